//! The browser side: camera frames into the engine and the overlay onto a WebGPU canvas.
//!
//! JavaScript (www/app.js) owns the camera, the UI and the frame clock; [`App`] owns the GPU.
//! Per frame: one external-image copy into the plan's source texture, then one encoder
//! (preprocess, ENet, argmax, overlay render pass) and one submission. Nothing is read back
//! unless asked ([`App::class_maps`], the documented test hook). What the page lets a person
//! choose arrives as one settings value ([`App::apply_settings`], `settings.rs`); the frame's
//! steps are in `frame.rs`.

mod cpu;
mod frame;
mod settings;
mod test_hooks;
mod tune;

pub use cpu::CpuApp;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use wasm_bindgen::prelude::*;
use web_sys::{HtmlCanvasElement, HtmlVideoElement, ImageBitmap};

use crate::adaptive::AdaptiveSize;
use crate::kernels::twin::{class_pixel_at, view_column};
use crate::kernels::upscale::Upscale;
use crate::model::Model;
use crate::runtime::{
    Gpu, Overlay, OverlayBinding, Plan, RefineBinding, Refiner, SmoothBinding, Smoother,
    StageTiming, UpscaleBinding, Upscaler,
};
use crate::segment::{Segmenter, SizeRequest};
use settings::{BadField, DEFAULT_SHORT_SIDE, SIZE_STEPS, Settings, Size};

/// Adaptive size goes no higher: larger sizes are for a chosen, pinned size.
const ADAPTIVE_MAX: usize = 480;
/// A frame with per-dispatch timestamps this often while the timing panel is open (ms): a
/// few updates a second, the other frames unburdened.
const DETAIL_EVERY_MS: f64 = 300.0;
/// The largest canvas side drawn (a 4K screen's long side).
const MAX_CANVAS_SIDE: u32 = 4096;

/// Milliseconds of the page's monotonic clock.
fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

/// GPU times for the page's timing panel.
#[derive(Default)]
struct Timings {
    /// A recent frame's compute pass, whole.
    frame_ms: Option<f64>,
    /// A recent frame timed dispatch by dispatch, and when it arrived.
    stages: Vec<StageTiming>,
    stages_at: f64,
}

/// A model's classes for the page's legend, as JSON `[{"name", "color": [r, g, b], "void"}]`
/// (both paths' `legend`).
fn legend(model: &Model) -> String {
    let items: Vec<serde_json::Value> = model
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({"name": c.name, "color": c.color, "void": Some(i) == model.void_class}))
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Installs the panic hook so a Rust panic reaches the browser console (and the page).
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Checks a weights file without touching the GPU, as the CLI checks it, so the page can tell
/// a bad model file (a missing asset the server answered with a web page, a truncated
/// download) from a GPU that cannot start.
#[wasm_bindgen]
pub fn validate_weights(weights: &[u8]) -> Result<(), JsError> {
    Model::from_safetensors(weights).map(|_| ()).map_err(js_err)
}

/// Refuses a picture file that ends before its format's end marker, as the CLI does
/// ([`crate::picture::check_complete`]): browsers decode partial JPEGs and PNGs without an
/// error, filling what is missing.
#[wasm_bindgen]
pub fn check_picture(bytes: &[u8]) -> Result<(), JsError> {
    crate::picture::check_complete(bytes)
        .map(|_| ())
        .map_err(js_err)
}

/// What one plan's frames draw with: the overlay's bind group (reading the smoothed class map
/// or the plan's own), the smoothing state, and the sizes they were made for.
struct Bound {
    overlay: OverlayBinding,
    smooth: SmoothBinding,
    smoothed: bool,
    /// The smoothed probabilities refined along the frame's edges (sharp edges on) or copied
    /// as they are: what the overlay and the probe read.
    refine: RefineBinding,
    /// The class of one canvas pixel as the overlay decides it when upscaling (1x1).
    probe_upscale: UpscaleBinding,
    /// The test hook's readback: the shown class map, then the frame's own.
    readback: wgpu::Buffer,
    net: (usize, usize),
    src: (usize, usize),
}

impl Bound {
    /// The class map the overlay draws: the smoothed one, or (smoothing off) `plan`'s own.
    fn shown_classes<'a>(&'a self, plan: &'a Plan) -> &'a wgpu::Buffer {
        if self.smoothed {
            self.smooth.class_buffer()
        } else {
            plan.class_buffer()
        }
    }
}

#[wasm_bindgen]
pub struct App {
    gpu: Gpu,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    canvas: HtmlCanvasElement,
    model: Model,
    segmenter: Segmenter,
    overlay: Overlay,
    smoother: Smoother,
    refiner: Refiner,
    upscaler: Upscaler,
    binding: Option<Bound>,
    /// What the page chose, as last applied.
    settings: Settings,
    /// The shorter side frames run at now (adaptive size changes it).
    short_side: usize,
    /// The canvas's size in device pixels, as the page lays it out (None: the frame's size).
    view_size: Option<(u32, u32)>,
    in_flight: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    timings: Rc<RefCell<Timings>>,
    last_detail_ms: f64,
    /// Some while the size adapts to the frame time; the page's "Auto" choice.
    adaptive: Option<AdaptiveSize>,
    /// The last frame's time from submission to the GPU's answer (f64 bits; NaN once taken).
    latency: Arc<AtomicU64>,
    /// One class index read back for [`App::class_at`], and whether that read is under way.
    probe: wgpu::Buffer,
    probe_busy: Rc<Cell<bool>>,
    skipped: u32,
    /// A new plan waits for the GPU to confirm its allocations (behind pipeline compiles).
    plan_pending: bool,
    frames: u32,
    /// Which configuration runs, measured on this device ([`tune`]).
    tuning: tune::Tuning,
}

/// The network input size for a `w` x `h` source at shorter side `short_side`, as `[w, h]`
/// (the size policy of [`crate::segment::network_size`]; the page labels its choices with it).
#[wasm_bindgen]
pub fn network_size(w: usize, h: usize, short_side: usize) -> Result<Vec<u32>, JsError> {
    let (nw, nh) =
        crate::segment::network_size((w, h), SizeRequest::ShortSide(short_side)).map_err(js_err)?;
    Ok(vec![nw as u32, nh as u32])
}

/// The size a decoded picture is scaled to before it is segmented, as `[w, h]`.
#[wasm_bindgen]
pub fn picture_size(w: usize, h: usize) -> Vec<u32> {
    let (pw, ph) = crate::segment::picture_size(w, h);
    vec![pw as u32, ph as u32]
}

/// The shorter sides the page's size menu offers, smallest first.
#[wasm_bindgen]
pub fn size_steps() -> Vec<u32> {
    SIZE_STEPS.iter().map(|&s| s as u32).collect()
}

/// The settings a new page starts from, as the object [`App::apply_settings`] takes:
/// `{view: "overlay" | "mask" | "side", size: "auto" | shorter side, smoothing, strength
/// (0..1), opacity (0..1), hidden: [class index], camera: {mirror, fps}, precision: "f16" |
/// "f32" | null (the GPU's best), sharpEdges, timingDetail}`.
#[wasm_bindgen]
pub fn default_settings() -> JsValue {
    Settings::default().to_js()
}

#[wasm_bindgen]
impl App {
    /// Starts WebGPU on `canvas` and loads `weights` (an engine weights file). `on_lost` is
    /// called (with the reason) if the GPU device is lost, so the page can start a new App
    /// at once rather than at the next camera frame, which may be seconds away then.
    /// `tuning_cache`, `tune_on` and `asked_config` say which configuration runs (see [`tune`]): what
    /// the page stored of earlier trials, whether to tune (`?tune=0`), and one asked for by
    /// name (`?config=`).
    pub async fn create(
        canvas: HtmlCanvasElement,
        weights: Vec<u8>,
        on_lost: js_sys::Function,
        tuning_cache: Option<String>,
        tune_on: bool,
        asked_config: Option<String>,
    ) -> Result<App, JsError> {
        let model = Model::from_safetensors(&weights).map_err(js_err)?;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let surface = instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas.clone()))
            .map_err(js_err)?;
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                compatible_surface: Some(&surface),
                ..Default::default()
            })
            .await
            .map_err(|_| JsError::new("WebGPU is present but no GPU adapter was offered"))?;
        // WebGPU's default limits are all the page needs (its largest network is 960x720).
        let gpu = Gpu::from_adapter_with(adapter, crate::runtime::Limits::Default)
            .await
            .map_err(js_err)?;
        let lost = Arc::new(AtomicBool::new(false));
        {
            let lost = lost.clone();
            gpu.device.set_device_lost_callback(move |reason, msg| {
                let text = format!("GPU device lost ({reason:?}): {msg}");
                web_sys::console::warn_1(&text.as_str().into());
                lost.store(true, Relaxed);
                if let Err(e) = on_lost.call1(&JsValue::NULL, &text.into()) {
                    web_sys::console::error_1(&e);
                }
            });
        }
        // Report validation errors instead of panicking; the page decides what to do.
        gpu.device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            web_sys::console::error_1(&format!("WebGPU error: {e}").into());
        }));
        let caps = surface.get_capabilities(&gpu.adapter);
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| !f.is_srgb())
            .or(caps.formats.first().copied())
            .ok_or_else(|| JsError::new("the canvas offers no texture format"))?;
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            width: canvas.width().max(1),
            height: canvas.height().max(1),
            present_mode: wgpu::PresentMode::Fifo,
            desired_maximum_frame_latency: 1,
            alpha_mode: caps.alpha_modes[0],
            view_formats: vec![],
            color_space: Default::default(),
        };
        surface.configure(&gpu.device, &config);
        let mut overlay = Overlay::new(&gpu.device, format);
        overlay.set_classes(&gpu.queue, &model.classes, model.void_class);
        // The configuration measured fastest here before (or asked for), else the default.
        let (tuning, start) = tune::Tuning::start(&gpu, tuning_cache, tune_on, asked_config);
        let segmenter = match start {
            Some(c) => Segmenter::with_config(&gpu, &model, c),
            None => Segmenter::new(&gpu, &model),
        }
        .map_err(js_err)?;
        let smoother = Smoother::new(&gpu.device);
        let refiner = Refiner::new(&gpu.device);
        let upscaler = Upscaler::new(&gpu.device);
        let probe = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("class probe"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(App {
            gpu,
            surface,
            config,
            canvas,
            model,
            segmenter,
            overlay,
            smoother,
            refiner,
            upscaler,
            binding: None,
            settings: Settings::default(),
            short_side: DEFAULT_SHORT_SIDE,
            view_size: None,
            in_flight: Arc::new(AtomicBool::new(false)),
            lost,
            timings: Default::default(),
            last_detail_ms: f64::NEG_INFINITY,
            adaptive: None,
            latency: Arc::new(AtomicU64::new(f64::NAN.to_bits())),
            probe,
            probe_busy: Default::default(),
            skipped: 0,
            plan_pending: false,
            frames: 0,
            tuning,
        })
    }

    /// Swaps in another model, validated exactly as the CLI validates it. On error the
    /// current model keeps running.
    pub fn load_weights(&mut self, weights: &[u8]) -> Result<(), JsError> {
        let model = Model::from_safetensors(weights).map_err(js_err)?;
        // The same configuration (chosen by measurement, or as the page asked) for the new one.
        let config = self.segmenter.engine().config();
        let segmenter = Segmenter::with_config(&self.gpu, &model, config).map_err(js_err)?;
        self.tuning.restart();
        self.overlay
            .set_classes(&self.gpu.queue, &model.classes, model.void_class);
        self.model = model;
        self.segmenter = segmenter;
        self.binding = None;
        // The new palette shows every class.
        self.settings.hidden.clear();
        Ok(())
    }

    /// Class names and colours, as JSON `[{"name", "color": [r, g, b]}]`; void flagged.
    pub fn legend(&self) -> String {
        legend(&self.model)
    }

    /// Adapter and model, for the page's status line.
    pub fn describe(&self) -> String {
        let info = self.gpu.info();
        serde_json::json!({
            "adapter": info.name,
            "backend": format!("{:?}", info.backend),
            "timestamps": self.gpu.has_timestamps(),
            "layout": self.model.layout.name(),
            "classes": self.model.num_classes(),
            "precision": self.segmenter.engine().precision().name(),
            "config": self.segmenter.engine().config().name(),
            "chosen": self.tuning.chosen.name(),
            "f16": self.gpu.has_f16(),
            "provenance": self.model.provenance,
        })
        .to_string()
    }

    /// Applies the page's settings (see [`default_settings`] for the object) all at once. A
    /// field that is missing or wrong fails the whole call, nothing changed, with an `Error`
    /// naming it (its `field` and `reason` too); so does a precision the GPU cannot run, a
    /// class index the model lacks, or a view the page does not know.
    pub fn apply_settings(&mut self, settings: JsValue) -> Result<(), JsValue> {
        let next = Settings::from_js(&settings)?;
        self.apply(next)?;
        Ok(())
    }

    /// Whether the size adapts (the page's "Auto").
    pub fn adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Automatic size resumes at `short_side` (where a lost device's App had got to), not at
    /// the default: a slow device would otherwise pay for large frames again before stepping
    /// down. Nothing while the size is pinned.
    pub fn resume_auto_at(&mut self, short_side: usize) {
        if self.adaptive.is_some() {
            self.start_auto(short_side);
        }
    }

    fn start_auto(&mut self, start: usize) {
        let steps: Vec<usize> = SIZE_STEPS
            .into_iter()
            .filter(|&s| s <= ADAPTIVE_MAX)
            .collect();
        let a = AdaptiveSize::new(&steps, start, self.settings.frame_ms());
        self.short_side = a.short_side();
        self.adaptive = Some(a);
    }

    /// The frame rate adaptive size keeps up with (the camera's); the page sets it with the
    /// rest of its settings (`camera.fps`).
    pub fn set_target_fps(&mut self, fps: f64) {
        if fps.is_finite() && fps > 0.0 {
            self.settings.camera.fps = fps;
            let ms = self.settings.frame_ms();
            if let Some(a) = &mut self.adaptive {
                a.set_target_ms(ms);
            }
        }
    }

    /// The canvas size in device pixels (its CSS size times devicePixelRatio), which the
    /// picture is drawn at; clamped to 1..=4096 a side.
    pub fn resize(&mut self, width: u32, height: u32) {
        self.view_size = Some((
            width.clamp(1, MAX_CANVAS_SIDE),
            height.clamp(1, MAX_CANVAS_SIDE),
        ));
    }

    /// GPU times as JSON: `{"available", "frame_ms", "stages": [{"label", "ms"}],
    /// "stages_age_ms"}`; `available` is false where the adapter has no timestamp queries.
    pub fn timings(&self) -> String {
        let t = self.timings.borrow();
        let stages: Vec<serde_json::Value> = t
            .stages
            .iter()
            .map(|s| serde_json::json!({"label": s.label, "ms": s.ms}))
            .collect();
        serde_json::json!({
            "available": self.gpu.has_timestamps(),
            "frame_ms": t.frame_ms,
            "stages": stages,
            "stages_age_ms": (!t.stages.is_empty()).then(|| now_ms() - t.stages_at),
        })
        .to_string()
    }

    /// The class shown at (`u`, `v`) of the canvas, both 0..1 from its top left: a Promise of
    /// the class index, or -1 off the picture, where nothing is drawn yet, or while the
    /// previous question is still being answered. One 4-byte read from the GPU; for a tap or
    /// a pointer, not for the frame loop.
    pub fn class_at(&self, u: f64, v: f64) -> js_sys::Promise {
        let none = || js_sys::Promise::resolve(&JsValue::from(-1));
        let Some(bound) = &self.binding else {
            return none();
        };
        let out = (self.config.width as usize, self.config.height as usize);
        let draw = self.settings.draw();
        let Some((x, y)) = class_pixel_at(u, v, out, bound.net, draw.view, draw.mirror) else {
            return none();
        };
        if self.probe_busy.get() {
            return none();
        }
        let Some(plan) = self.segmenter.cached_plan(bound.net, bound.src) else {
            return none();
        };
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        if draw.upscale == Upscale::Nearest {
            let offset = ((y * bound.net.0 + x) * 4) as u64;
            encoder.copy_buffer_to_buffer(bound.shown_classes(plan), offset, &self.probe, 0, 4);
        } else {
            // The overlay decides each canvas pixel's class itself: ask the same function for
            // the pixel under the point, in its panel's coordinates.
            let px = ((u * out.0 as f64) as usize).min(out.0 - 1);
            let py = ((v * out.1 as f64) as usize).min(out.1 - 1);
            let (_, pw, px) = view_column(px, out.0, draw.view, draw.mirror);
            self.upscaler.encode_point(
                &self.gpu.queue,
                &mut encoder,
                &bound.probe_upscale,
                draw.upscale,
                ((pw, out.1), (px, py)),
                &self.probe,
            );
        }
        self.gpu.queue.submit([encoder.finish()]);
        self.probe_busy.set(true);
        let (gpu, probe, busy) = (
            self.gpu.clone(),
            self.probe.clone(),
            self.probe_busy.clone(),
        );
        wasm_bindgen_futures::future_to_promise(async move {
            let read = gpu.read_buffer(&probe).await;
            busy.set(false);
            let bytes = read.map_err(|e| JsValue::from(js_err(e)))?;
            Ok(JsValue::from(bytes[0] as i32))
        })
    }

    /// True while the GPU still works on the last frame: a new frame would queue, so the
    /// caller skips it.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Relaxed)
    }

    /// True while the GPU works on a frame or has yet to confirm a new plan (which waits on
    /// pipeline compiles, seconds on some devices): the camera watchdog counts neither as a
    /// camera that gives no picture, since the browser may deliver no frames meanwhile.
    pub fn working(&self) -> bool {
        self.busy() || self.plan_pending
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Relaxed)
    }

    /// GPU milliseconds of a recent frame (timestamp queries), if the adapter has them.
    pub fn gpu_ms(&self) -> Option<f64> {
        self.timings.borrow().frame_ms
    }

    /// The network size of the last frame, `[w, h]` (empty before the first).
    pub fn net_size(&self) -> Vec<u32> {
        self.binding
            .as_ref()
            .map_or(Vec::new(), |b| vec![b.net.0 as u32, b.net.1 as u32])
    }

    pub fn skipped(&self) -> u32 {
        self.skipped
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Bytes of GPU memory the current plan holds (activations, class map, readback).
    pub fn gpu_memory_bytes(&self) -> f64 {
        self.binding.as_ref().map_or(0.0, |b| {
            let plan = self.segmenter.cached_plan(b.net, b.src);
            (plan.map_or(0, |p| p.memory_bytes()) + b.smooth.memory_bytes()) as f64
        })
    }

    /// Segments the current frame of a playing `<video>`. Returns false when skipped
    /// because the GPU is still busy with the previous frame.
    pub fn frame_video(&mut self, video: &HtmlVideoElement) -> Result<bool, JsError> {
        let size = (video.video_width() as usize, video.video_height() as usize);
        // A camera's or video's frames are checked (a 1x1 or 4000x16 camera is named as
        // such); a picture the user chose is segmented whatever its size, as the CLI does.
        if size.0 > 0 && size.1 > 0 {
            crate::segment::check_source(size.0, size.1).map_err(js_err)?;
        }
        self.frame(
            wgpu::ExternalImageSource::HTMLVideoElement(video.clone()),
            size,
        )
    }

    /// Segments a decoded still image (or a video frame captured as a bitmap).
    pub fn frame_bitmap(&mut self, bitmap: &ImageBitmap) -> Result<bool, JsError> {
        let size = (bitmap.width() as usize, bitmap.height() as usize);
        self.frame(wgpu::ExternalImageSource::ImageBitmap(bitmap.clone()), size)
    }

    /// Draws the last result again (another opacity, view or canvas size while paused or on a
    /// still picture); no network work.
    pub fn redraw(&mut self) -> Result<(), JsError> {
        let Some(src) = self.binding.as_ref().map(|b| b.src) else {
            return Ok(());
        };
        let Some((target, size)) = self.canvas_texture(src) else {
            return Ok(());
        };
        let bound = self.binding.as_ref().expect("checked above");
        let view = target.texture.create_view(&Default::default());
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.overlay.encode(
            &self.gpu.queue,
            &mut encoder,
            &view,
            size,
            &bound.overlay,
            self.settings.draw(),
        );
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.queue.present(target);
        Ok(())
    }
}

impl App {
    /// [`App::apply_settings`] for a value already read: whatever can be refused is checked
    /// or done first, so a refusal leaves every setting as it was.
    fn apply(&mut self, next: Settings) -> Result<(), BadField> {
        let classes = self.model.num_classes();
        if let Some(c) = next.hidden.iter().find(|&&c| c >= classes) {
            return Err(BadField::new(
                "hidden",
                format!("class {c}: the model has {classes} classes"),
            ));
        }
        // A precision the page asks for runs the default configuration at it; without one, a
        // configuration measured here (or remembered) keeps running, else the default.
        let running = self.segmenter.engine().config();
        let rebuild = match next.precision {
            Some(p) => p != running.precision,
            None => {
                self.tuning.chosen == tune::Chosen::Default
                    && running.precision != self.gpu.best_precision()
            }
        };
        let precision = next.precision.unwrap_or_else(|| self.gpu.best_precision());
        if rebuild {
            self.segmenter = Segmenter::with_precision(&self.gpu, &self.model, precision)
                .map_err(|e| BadField::new("precision", e.to_string()))?;
            self.binding = None;
            if next.precision.is_some() {
                self.tuning.chosen = tune::Chosen::Forced;
            }
        }
        if next.hidden != self.settings.hidden {
            for c in 0..classes {
                self.overlay
                    .set_class_visible(&self.gpu.queue, c, !next.hidden.contains(&c));
            }
        }
        let fps_changed = next.camera.fps != self.settings.camera.fps;
        self.settings = next;
        match self.settings.size {
            // Already adapting: it keeps what it has learnt of this GPU.
            Size::Auto if self.adaptive.is_some() => {
                if fps_changed {
                    let ms = self.settings.frame_ms();
                    self.adaptive.as_mut().expect("matched").set_target_ms(ms);
                }
            }
            Size::Auto => self.start_auto(DEFAULT_SHORT_SIDE),
            Size::ShortSide(side) => {
                self.adaptive = None;
                self.short_side = side;
            }
        }
        Ok(())
    }
}
