//! One camera frame, step by step: adapt the size, plan and bind for it, copy the frame in,
//! pick the timing, encode, submit and present. Behaviour is [`App::frame`]'s, in one place
//! per step.

use std::sync::atomic::Ordering::Relaxed;

use wasm_bindgen::prelude::*;

use super::{App, Bound, DETAIL_EVERY_MS, MAX_CANVAS_SIDE, js_err, now_ms};
use crate::runtime::{FrameOptions, Plan, Timing};
use crate::segment::SizeRequest;

/// The canvas texture to draw into; None (skip this frame) when the surface must be
/// reconfigured or is momentarily unavailable.
fn current_texture(
    surface: &wgpu::Surface,
    device: &wgpu::Device,
    config: &wgpu::SurfaceConfiguration,
) -> Option<wgpu::SurfaceTexture> {
    match surface.get_current_texture() {
        wgpu::CurrentSurfaceTexture::Success(t) | wgpu::CurrentSurfaceTexture::Suboptimal(t) => {
            Some(t)
        }
        wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
            surface.configure(device, config);
            None
        }
        _ => None,
    }
}

/// Copies a camera frame or picture (`src` pixels) straight into `plan`'s source texture.
pub(super) fn copy_into(
    queue: &wgpu::Queue,
    plan: &Plan,
    src: (usize, usize),
    source: wgpu::ExternalImageSource,
) {
    queue.copy_external_image_to_texture(
        &wgpu::CopyExternalImageSourceInfo {
            source,
            origin: wgpu::Origin2d::ZERO,
            flip_y: false,
        },
        wgpu::CopyExternalImageDestInfo {
            texture: plan.source_texture(),
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
            color_space: wgpu::PredefinedColorSpace::Srgb,
            premultiplied_alpha: false,
        },
        wgpu::Extent3d {
            width: src.0 as u32,
            height: src.1 as u32,
            depth_or_array_layers: 1,
        },
    );
}

impl App {
    /// Segments `source` (`src` pixels) and draws it onto the canvas. Returns false when the
    /// frame was skipped: the GPU still busy, a new plan not yet confirmed, or no canvas
    /// texture this time.
    pub(super) fn frame(
        &mut self,
        source: wgpu::ExternalImageSource,
        src: (usize, usize),
    ) -> Result<bool, JsError> {
        if src.0 == 0 || src.1 == 0 {
            return Ok(false);
        }
        if self.in_flight.load(Relaxed) {
            self.skipped += 1;
            return Ok(false);
        }
        self.adapt();
        // Auto never runs above the frame's own size; a pinned size may.
        let request = match &mut self.adaptive {
            Some(a) => {
                if let Some(side) = a.set_ceiling(src.0.min(src.1)) {
                    self.short_side = side;
                }
                SizeRequest::ShortSideAtMost(self.short_side)
            }
            None => SizeRequest::ShortSide(self.short_side),
        };
        let net = crate::segment::network_size(src, request).map_err(js_err)?;
        // While trials run, every other free slot goes to a trial frame.
        if self.tune_step(net, src, &source) {
            return Ok(false);
        }
        // A new plan's allocations are confirmed by the GPU asynchronously; its first frame
        // waits for that answer (the caller tries again on the next frame).
        let pending = self.segmenter.plan(net, src).map(|p| p.is_none());
        self.plan_pending = matches!(pending, Ok(true));
        if pending.map_err(js_err)? {
            return Ok(false);
        }
        let Some((target, target_size)) = self.canvas_texture(src) else {
            return Ok(false);
        };
        self.rebind(net, src);
        self.follow_smoothing(net, src);
        self.copy_frame(net, src, source);
        // The frame's latency, which adaptive size reads, runs from here to the GPU's answer.
        let now = now_ms();
        let timing = self.timing_mode(net, src, now);
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .expect("made just above");
        let bound = self.binding.as_ref().expect("bound just above");
        let view = target.texture.create_view(&Default::default());
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, plan, bound, timing, &view, target_size);
        self.submit(encoder, plan, timing, now);
        self.gpu.queue.present(target);
        self.frames += 1;
        Ok(true)
    }

    /// Feeds the last frame's time to adaptive size, which may pick another size.
    fn adapt(&mut self) {
        let ms = f64::from_bits(self.latency.swap(f64::NAN.to_bits(), Relaxed));
        if ms.is_nan() {
            return;
        }
        if let Some(a) = &mut self.adaptive
            && let Some(side) = a.observe(ms, now_ms())
        {
            self.short_side = side;
        }
    }

    /// The canvas texture to draw into, the canvas first set to the laid-out size (or the
    /// frame's, `src`, before the page lays it out); None skips this frame.
    pub(super) fn canvas_texture(
        &mut self,
        src: (usize, usize),
    ) -> Option<(wgpu::SurfaceTexture, (u32, u32))> {
        let want = self.view_size.unwrap_or((
            (src.0 as u32).clamp(1, MAX_CANVAS_SIDE),
            (src.1 as u32).clamp(1, MAX_CANVAS_SIDE),
        ));
        if (self.config.width, self.config.height) != want {
            self.canvas.set_width(want.0);
            self.canvas.set_height(want.1);
            self.config.width = want.0;
            self.config.height = want.1;
            self.surface.configure(&self.gpu.device, &self.config);
        }
        let target = current_texture(&self.surface, &self.gpu.device, &self.config)?;
        Some((target, want))
    }

    /// Makes what the plan for `net` and `src` draws with, unless it is there already.
    fn rebind(&mut self, net: (usize, usize), src: (usize, usize)) {
        if matches!(&self.binding, Some(b) if b.net == net && b.src == src) {
            return;
        }
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .expect("planned by the caller");
        let device = &self.gpu.device;
        let smooth = self.smoother.bind(device, plan);
        let refine = self
            .refiner
            .bind(device, &self.gpu.queue, plan, smooth.prob_buffer());
        let overlay = self
            .overlay
            .bind(device, plan, smooth.class_buffer(), refine.prob_buffer());
        let probe_upscale = self
            .upscaler
            .bind(device, plan, refine.prob_buffer(), (1, 1));
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("class maps readback"),
            size: 2 * plan.class_buffer().size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.binding = Some(Bound {
            overlay,
            smooth,
            smoothed: true,
            refine,
            probe_upscale,
            readback,
            net,
            src,
        });
    }

    /// Points the overlay at the smoothed class map or the plan's own, as the smoothing
    /// setting now says; smoothing switched on starts afresh.
    fn follow_smoothing(&mut self, net: (usize, usize), src: (usize, usize)) {
        let smoothing = self.settings.smoothing;
        let Some(bound) = self.binding.as_mut() else {
            return;
        };
        if bound.smoothed == smoothing {
            return;
        }
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .expect("planned by the caller");
        bound.smoothed = smoothing;
        if smoothing {
            bound.smooth.reset();
            bound.refine.reset();
        }
        bound.overlay = self.overlay.bind(
            &self.gpu.device,
            plan,
            bound.shown_classes(plan),
            bound.refine.prob_buffer(),
        );
    }

    /// Copies the frame straight into the plan's source texture.
    fn copy_frame(
        &self,
        net: (usize, usize),
        src: (usize, usize),
        source: wgpu::ExternalImageSource,
    ) {
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .expect("planned by the caller");
        copy_into(&self.gpu.queue, plan, src, source);
    }

    /// One timestamp pair for the frame, or (the timing panel open, a few times a second)
    /// one per dispatch; none while the last timings are still being read.
    fn timing_mode(&mut self, net: (usize, usize), src: (usize, usize), now: f64) -> Timing {
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .expect("planned by the caller");
        if !plan.has_timestamps() || plan.timings_pending() {
            Timing::Off
        } else if self.settings.timing_detail && now - self.last_detail_ms >= DETAIL_EVERY_MS {
            self.last_detail_ms = now;
            Timing::PerDispatch
        } else {
            Timing::Frame
        }
    }

    /// The network, the smoothing pass and the overlay render pass, in one encoder.
    fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        plan: &Plan,
        bound: &Bound,
        timing: Timing,
        view: &wgpu::TextureView,
        target_size: (u32, u32),
    ) {
        plan.encode(
            encoder,
            FrameOptions {
                read_classes: false,
                timing,
            },
        );
        // The probabilities are kept for every frame, smoothed or (smoothing off) the frame's
        // own, so that edge-aware drawing, switched on at any time (also over a paused or
        // still picture), reads this frame's.
        let smoothing = self.settings.smoothing;
        if !smoothing {
            bound.smooth.reset();
        }
        let strength = if smoothing {
            self.settings.strength
        } else {
            0.0
        };
        self.smoother
            .encode(&self.gpu.queue, encoder, &bound.smooth, strength);
        // Sharp edges refine the probabilities at the network's size first; drawn by nearest,
        // they are only copied, so that edges switched on later read this frame's.
        if self.settings.sharp_edges {
            self.refiner
                .encode(&self.gpu.queue, encoder, &bound.refine, strength);
        } else {
            self.refiner.encode_copy(encoder, &bound.refine);
        }
        self.overlay.encode(
            &self.gpu.queue,
            encoder,
            view,
            target_size,
            &bound.overlay,
            self.settings.draw(),
        );
    }

    /// Submits the frame; the GPU's answer frees the App for the next one and gives adaptive
    /// size its time, and the timings, when asked for, are read back as they come.
    fn submit(&self, encoder: wgpu::CommandEncoder, plan: &Plan, timing: Timing, now: f64) {
        self.in_flight.store(true, Relaxed);
        self.gpu.queue.submit([encoder.finish()]);
        let (in_flight, latency) = (self.in_flight.clone(), self.latency.clone());
        self.gpu.queue.on_submitted_work_done(move || {
            in_flight.store(false, Relaxed);
            latency.store((now_ms() - now).to_bits(), Relaxed);
        });
        if timing == Timing::Off {
            return;
        }
        let slot = self.timings.clone();
        plan.request_timings(move |t| {
            let mut slot = slot.borrow_mut();
            if timing == Timing::PerDispatch {
                if !t.is_empty() {
                    slot.stages = t;
                    slot.stages_at = now_ms();
                }
            } else if let Some(f) = t.first() {
                slot.frame_ms = Some(f.ms);
            }
        });
    }
}
