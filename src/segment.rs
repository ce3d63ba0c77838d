//! The engine's front door: an RGBA frame in, a class map out.
//!
//! Size policy ([`network_size`], the one place the CLI, the page's wasm and its JS take it
//! from): ENet needs both sides of its input to be multiples of 8. By default a frame runs at
//! its own size, each side rounded to the nearest multiple of 8, frames whose longer side
//! exceeds [`MAX_AUTO_SIDE`] scaled down to it; the page asks for a shorter side instead and
//! the longer follows the frame's aspect. The frame is resized bilinearly on the GPU. Class
//! maps come out at the network size; [`ClassMap::resize_nearest`] brings them back to the
//! frame's size.

use std::task::Poll;

use crate::kernels::upscale::Upscale;
use crate::model::Model;
use crate::runtime::{
    Checked, Engine, EngineError, FrameOptions, Gpu, Plan, RefineBinding, Refiner, SmoothBinding,
    Smoother, UpscaleBinding, Upscaler,
};

/// Largest side accepted for a network input; beyond it the activations of one frame
/// outgrow what any browser lets a buffer hold.
pub const MAX_SIDE: usize = 4096;

/// Longest side the automatic policy picks; larger frames are scaled down to it.
pub const MAX_AUTO_SIDE: usize = 2048;

/// How the network input size is chosen for a source frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeRequest {
    /// The frame's own size, each side rounded to the nearest multiple of 8; frames whose
    /// longer side exceeds [`MAX_AUTO_SIDE`] are scaled down to it first (the CLI's default).
    Native,
    /// This shorter side (a multiple of 8), the longer one following the frame's aspect: a
    /// portrait camera runs portrait (the page's size choices).
    ShortSide(usize),
    /// As `ShortSide`, but never above the frame's own shorter side (rounded down to a
    /// multiple of 8): a larger network only adds pixels the frame does not have, and costs a
    /// slow device dearly (the page's automatic size).
    ShortSideAtMost(usize),
    /// Exactly (w, h), both multiples of 8 (the CLI's `--size`).
    Exact(usize, usize),
}

/// Rounds to the nearest multiple of 8, within 8..=[`MAX_AUTO_SIDE`].
fn round8(v: f64) -> usize {
    (((v / 8.0).round() as usize) * 8).clamp(8, MAX_AUTO_SIDE)
}

/// The network input size for a `source` frame: the one size policy of the CLI and the page.
pub fn network_size(
    source: (usize, usize),
    request: SizeRequest,
) -> Result<(usize, usize), EngineError> {
    let (sw, sh) = source;
    let (w, h) = match request {
        SizeRequest::Exact(w, h) => (w, h),
        _ => source,
    };
    let bad = |reason: String| Err(EngineError::Size { w, h, reason });
    if sw == 0 || sh == 0 || w == 0 || h == 0 {
        return bad("both sides must be positive".into());
    }
    match request {
        SizeRequest::ShortSideAtMost(s) => {
            let own = (sw.min(sh) / 8 * 8).max(8);
            network_size(source, SizeRequest::ShortSide(s.min(own)))
        }
        SizeRequest::Exact(w, h) => {
            if w % 8 != 0 || h % 8 != 0 {
                return bad(
                    "both sides must be multiples of 8 (ENet downsamples three times)".into(),
                );
            }
            if w > MAX_SIDE || h > MAX_SIDE {
                return bad(format!("the largest side supported is {MAX_SIDE}"));
            }
            Ok((w, h))
        }
        SizeRequest::ShortSide(s) => {
            if s == 0 || s % 8 != 0 || s > MAX_AUTO_SIDE {
                return bad(format!(
                    "a shorter side of {s}: it must be a multiple of 8 up to {MAX_AUTO_SIDE}"
                ));
            }
            // A panorama is squeezed rather than made into a huge network.
            let long = |a: usize, b: usize| round8(a as f64 * s as f64 / b as f64);
            Ok(if sw >= sh {
                (long(sw, sh), s)
            } else {
                (s, long(sh, sw))
            })
        }
        SizeRequest::Native => {
            let scale = (MAX_AUTO_SIDE as f64 / sw.max(sh) as f64).min(1.0);
            Ok((round8(sw as f64 * scale), round8(sh as f64 * scale)))
        }
    }
}

/// The smallest and largest sides of a camera's or a video's frame the page segments: below
/// the smallest there is nothing to see (ENet downsamples three times); above the largest a
/// WebGPU texture (default limits) cannot hold it. Pictures are scaled by [`picture_size`]
/// instead and segmented whatever their size.
pub const MIN_SOURCE_SIDE: usize = 16;
pub const MAX_SOURCE_SIDE: usize = 8192;
/// A longer side over this many times the shorter is a strip, not a picture: the network
/// would see it squeezed past recognition.
pub const MAX_SOURCE_ASPECT: usize = 8;

/// Whether a `w` x `h` frame of a camera or a video can be segmented.
pub fn check_source(w: usize, h: usize) -> Result<(), EngineError> {
    let reason = if w.min(h) < MIN_SOURCE_SIDE {
        format!("each side must be at least {MIN_SOURCE_SIDE} pixels")
    } else if w.max(h) > MAX_SOURCE_SIDE {
        format!("each side must be at most {MAX_SOURCE_SIDE} pixels")
    } else if w.max(h) > MAX_SOURCE_ASPECT * w.min(h) {
        format!("the longer side may be at most {MAX_SOURCE_ASPECT} times the shorter")
    } else {
        return Ok(());
    };
    Err(EngineError::Source { w, h, reason })
}

/// The size a decoded picture is scaled to before it is segmented on the page: the longer
/// side at most [`MAX_AUTO_SIDE`] (the network never runs larger, and a GPU texture side is
/// limited), the aspect kept, at least 1 pixel a side.
pub fn picture_size(w: usize, h: usize) -> (usize, usize) {
    let longest = w.max(h);
    if longest <= MAX_AUTO_SIDE {
        return (w, h);
    }
    let s = MAX_AUTO_SIDE as f64 / longest as f64;
    (
        ((w as f64 * s).round() as usize).max(1),
        ((h as f64 * s).round() as usize).max(1),
    )
}

/// Whether a class map can be made at `out`: both engines' `segment_to` ask.
pub fn check_output(out: (usize, usize)) -> Result<(), EngineError> {
    if out.0 == 0 || out.1 == 0 {
        return Err(EngineError::Size {
            w: out.0,
            h: out.1,
            reason: "an output needs at least one pixel".into(),
        });
    }
    Ok(())
}

/// One class index per pixel, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMap {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl ClassMap {
    /// Nearest-neighbour resize (class indices must not be blended).
    pub fn resize_nearest(&self, width: usize, height: usize) -> ClassMap {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        use crate::kernels::twin::nearest_index;
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            let row = nearest_index(y, height, self.height) * self.width;
            for x in 0..width {
                data.push(self.data[row + nearest_index(x, width, self.width)]);
            }
        }
        ClassMap {
            width,
            height,
            data,
        }
    }
}

/// A model on a GPU, with a plan cached for the last frame and network size.
pub struct Segmenter {
    engine: Engine,
    plan: Option<Checked<Plan>>,
    /// Sizes whose plan the GPU refused, and why: asking again fails at once instead of
    /// allocating (and failing) on every frame.
    refused: Option<Refusal>,
    /// Made on the first [`Segmenter::segment_to`].
    upscaling: Option<Upscaling>,
}

/// The passes that bring a frame's classes to another size: its class probabilities (the
/// smoothing pass, started afresh each frame), their refinement along the frame's edges (edge
/// mode) and the upscale, bound to one plan and size.
struct Upscaling {
    smoother: Smoother,
    refiner: Refiner,
    upscaler: Upscaler,
    bound: Option<UpscaleBound>,
}

struct UpscaleBound {
    net: (usize, usize),
    source: (usize, usize),
    smooth: SmoothBinding,
    refine: RefineBinding,
    upscale: UpscaleBinding,
}

struct Refusal {
    net: (usize, usize),
    source: (usize, usize),
    mib: u64,
    /// None: out of memory.
    other: Option<String>,
}

impl Refusal {
    fn error(&self) -> EngineError {
        match &self.other {
            None => EngineError::OutOfMemory {
                w: self.net.0,
                h: self.net.1,
                mib: self.mib,
            },
            Some(msg) => EngineError::Gpu(msg.clone()),
        }
    }
}

/// Class maps hold a class index per byte.
fn check_classes(model: &Model) -> Result<(), EngineError> {
    if model.num_classes() > 256 {
        return Err(EngineError::Gpu(format!(
            "{} classes: class maps hold at most 256",
            model.num_classes()
        )));
    }
    Ok(())
}

impl Segmenter {
    /// A segmenter at the device's best precision ([`Gpu::best_precision`]: f16 where the
    /// device has `shader-f16`).
    pub fn new(gpu: &Gpu, model: &Model) -> Result<Segmenter, EngineError> {
        Segmenter::with_precision(gpu, model, gpu.best_precision())
    }

    /// A segmenter storing activations and weights at `precision`.
    pub fn with_precision(
        gpu: &Gpu,
        model: &Model,
        precision: crate::kernels::Precision,
    ) -> Result<Segmenter, EngineError> {
        check_classes(model)?;
        let engine = Engine::with_precision(gpu, &model.graph, model.normalization, precision)?;
        Ok(Segmenter::from_engine(engine))
    }

    /// A segmenter with its own plans on `engine` (a clone of another's shares its pipelines
    /// and weights).
    pub fn from_engine(engine: Engine) -> Segmenter {
        Segmenter {
            engine,
            plan: None,
            refused: None,
            upscaling: None,
        }
    }

    /// A segmenter running the engine as `config` says (e.g. the one measured fastest on
    /// this device, [`crate::runtime::tune`]).
    pub fn with_config(
        gpu: &Gpu,
        model: &Model,
        config: crate::runtime::tune::Config,
    ) -> Result<Segmenter, EngineError> {
        check_classes(model)?;
        let engine = Engine::for_config(gpu, &model.graph, model.normalization, config)?;
        Ok(Segmenter::from_engine(engine))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The plan for these sizes, made only when they differ from the last one. `Ok(None)`
    /// while the GPU has not yet said whether the plan's buffers could be allocated (on the
    /// web the answer comes a little later; ask again on the next frame). A plan the GPU
    /// refused, for lack of memory or otherwise, is an error, now and whenever the same
    /// sizes are asked for again.
    pub fn plan(
        &mut self,
        net: (usize, usize),
        source: (usize, usize),
    ) -> Result<Option<&Plan>, EngineError> {
        if let Some(r) = &self.refused
            && (r.net, r.source) == (net, source)
        {
            return Err(r.error());
        }
        let reuse = matches!(&self.plan, Some(p)
            if p.value().net_size() == net && p.value().source_size() == source);
        if !reuse {
            // Drop the old plan first so its buffers are free before the new ones exist.
            self.plan = None;
            self.refused = None;
            let engine = &self.engine;
            self.plan = Some(engine.gpu().checked(|| engine.plan(net, source))?);
        }
        let answer = self.plan.as_mut().expect("just set").poll();
        match answer {
            Poll::Pending => Ok(None),
            Poll::Ready(Ok(())) => Ok(self.plan.as_ref().map(Checked::value)),
            Poll::Ready(Err(e)) => Err(self.refuse(net, source, e)),
        }
    }

    /// [`Segmenter::plan`], waiting for the GPU's answer.
    pub async fn ready_plan(
        &mut self,
        net: (usize, usize),
        source: (usize, usize),
    ) -> Result<&Plan, EngineError> {
        if self.plan(net, source)?.is_none() {
            let answer = self.plan.as_mut().expect("made by plan()").wait().await;
            if let Err(e) = answer {
                return Err(self.refuse(net, source, e));
            }
        }
        Ok(self.plan.as_ref().expect("checked above").value())
    }

    fn refuse(
        &mut self,
        net: (usize, usize),
        source: (usize, usize),
        error: wgpu::Error,
    ) -> EngineError {
        let mib = self
            .plan
            .take()
            .map_or(0, |p| p.value().memory_bytes().div_ceil(1 << 20));
        let refusal = Refusal {
            net,
            source,
            mib,
            other: match error {
                wgpu::Error::OutOfMemory { .. } => None,
                e => Some(e.to_string()),
            },
        };
        let err = refusal.error();
        self.refused = Some(refusal);
        err
    }

    /// The cached plan, if it is for these sizes.
    pub fn cached_plan(&self, net: (usize, usize), source: (usize, usize)) -> Option<&Plan> {
        self.plan
            .as_ref()
            .map(Checked::value)
            .filter(|p| p.net_size() == net && p.source_size() == source)
    }

    /// Segments one RGBA8 frame of `w` x `h` at network size `net`; the class map is at `net`.
    pub async fn segment(
        &mut self,
        rgba: &[u8],
        w: usize,
        h: usize,
        net: (usize, usize),
    ) -> Result<ClassMap, EngineError> {
        let plan = self.ready_plan(net, (w, h)).await?;
        plan.submit_frame(
            rgba,
            FrameOptions {
                read_classes: true,
                ..Default::default()
            },
        )?;
        let data = plan.read_classes().await?;
        Ok(ClassMap {
            width: net.0,
            height: net.1,
            data,
        })
    }

    /// Segments one RGBA8 frame of `w` x `h` at network size `net` and brings its classes to
    /// `out` (usually the frame's own size) by `mode`, guided by the frame itself for
    /// [`Upscale::Edge`]: one submission, the class map read back at `out`.
    pub async fn segment_to(
        &mut self,
        rgba: &[u8],
        (w, h): (usize, usize),
        net: (usize, usize),
        out: (usize, usize),
        mode: Upscale,
    ) -> Result<ClassMap, EngineError> {
        check_output(out)?;
        self.ready_plan(net, (w, h)).await?;
        let plan = self.plan.as_ref().expect("made by ready_plan").value();
        let gpu = self.engine.gpu();
        let device = &gpu.device;
        let up = self.upscaling.get_or_insert_with(|| Upscaling {
            smoother: Smoother::new(device),
            refiner: Refiner::new(device),
            upscaler: Upscaler::new(device),
            bound: None,
        });
        let stale = !matches!(&up.bound, Some(b)
            if b.net == net && b.source == (w, h) && b.upscale.out_size() == out);
        if stale {
            up.bound = None;
            let smooth = up.smoother.bind(device, plan);
            let refine = up
                .refiner
                .bind(device, &gpu.queue, plan, smooth.prob_buffer());
            let upscale = up.upscaler.bind(device, plan, refine.prob_buffer(), out);
            up.bound = Some(UpscaleBound {
                net,
                source: (w, h),
                smooth,
                refine,
                upscale,
            });
        }
        let bound = up.bound.as_ref().expect("bound above");
        plan.upload_rgba(rgba)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        plan.encode(&mut encoder, FrameOptions::default());
        // Each frame on its own: the probabilities are this frame's softmax.
        bound.smooth.reset();
        up.smoother
            .encode(&gpu.queue, &mut encoder, &bound.smooth, 0.0);
        if crate::kernels::refine::applies(mode, net, out) {
            up.refiner
                .encode(&gpu.queue, &mut encoder, &bound.refine, 0.0);
        } else {
            up.refiner.encode_copy(&mut encoder, &bound.refine);
        }
        up.upscaler
            .encode(&gpu.queue, &mut encoder, &bound.upscale, mode, true);
        gpu.queue.submit([encoder.finish()]);
        let data = bound.upscale.read(gpu).await?;
        Ok(ClassMap {
            width: out.0,
            height: out.1,
            data,
        })
    }

    /// Runs one frame and returns the logits (`classes x h x w`), for tests and tools.
    pub async fn logits(
        &mut self,
        rgba: &[u8],
        w: usize,
        h: usize,
        net: (usize, usize),
    ) -> Result<Vec<f32>, EngineError> {
        let plan = self.ready_plan(net, (w, h)).await?;
        plan.submit_frame(rgba, FrameOptions::default())?;
        plan.read_tensor(plan.output()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_too_small_or_too_large_are_named() {
        assert!(check_source(16, 16).is_ok());
        assert!(check_source(8192, 4000).is_ok());
        assert!(check_source(16, 128).is_ok());
        let e = check_source(1, 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "a 1x1 frame cannot be segmented: each side must be at least 16 pixels"
        );
        let e = check_source(4000, 16).unwrap_err().to_string();
        assert!(e.contains("4000x16") && e.contains("8 times"), "{e}");
        assert!(check_source(128, 16).is_ok());
        let e = check_source(9000, 100).unwrap_err().to_string();
        assert!(e.contains("at most 8192"), "{e}");
    }

    #[test]
    fn size_policy() {
        use SizeRequest::*;
        let size = |src, req| network_size(src, req).unwrap();
        assert_eq!(size((480, 360), Native), (480, 360));
        assert_eq!(size((481, 357), Native), (480, 360));
        assert_eq!(size((1, 1), Native), (8, 8));
        assert_eq!(size((4000, 3000), Native), (2048, 1536));
        assert_eq!(size((100, 100), Exact(64, 48)), (64, 48));
        assert!(network_size((100, 100), Exact(65, 48)).is_err());
        assert!(network_size((0, 10), Native).is_err());
        assert!(network_size((10, 10), Exact(8192, 8)).is_err());
        // The page's choices: a shorter side; portrait stays portrait.
        assert_eq!(size((1280, 720), ShortSide(360)), (640, 360));
        assert_eq!(size((720, 1280), ShortSide(360)), (360, 640));
        assert_eq!(size((640, 480), ShortSide(240)), (320, 240));
        assert_eq!(size((37, 29), ShortSide(240)), (304, 240));
        assert_eq!(size((1, 1), ShortSide(96)), (96, 96));
        // Odd camera sizes: a 4000x16 strip is squeezed to the largest side, never refused.
        assert_eq!(size((4000, 16), ShortSide(96)), (2048, 96));
        assert_eq!(size((16, 4000), ShortSide(96)), (96, 2048));
        assert!(network_size((640, 480), ShortSide(100)).is_err());
        // The page's automatic size never runs above the frame's own size; a pinned one may.
        assert_eq!(size((240, 360), ShortSideAtMost(360)), (240, 360));
        assert_eq!(size((240, 360), ShortSide(360)), (360, 544));
        assert_eq!(size((1280, 720), ShortSideAtMost(360)), (640, 360));
        assert_eq!(size((250, 190), ShortSideAtMost(480)), (240, 184));
        assert_eq!(size((5, 3), ShortSideAtMost(96)), (16, 8));
        assert!(network_size((640, 480), ShortSide(0)).is_err());
        assert!(network_size((0, 480), ShortSide(240)).is_err());
        assert_eq!(picture_size(6000, 4500), (2048, 1536));
        assert_eq!(picture_size(24000, 3), (2048, 1));
        assert_eq!(picture_size(640, 480), (640, 480));
    }

    #[test]
    fn nearest_resize_keeps_classes() {
        let m = ClassMap {
            width: 2,
            height: 2,
            data: vec![0, 1, 2, 3],
        };
        let r = m.resize_nearest(4, 3);
        assert_eq!(r.data, vec![0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
        assert_eq!(r.resize_nearest(2, 2).data.len(), 4);
    }
}
