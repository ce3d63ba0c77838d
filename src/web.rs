//! The browser side: camera frames into the engine and the overlay onto a WebGPU canvas.
//!
//! JavaScript (www/app.js) owns the camera, the UI and the frame clock; [`App`] owns the GPU.
//! Per frame: one external-image copy into the plan's source texture, then one encoder
//! (preprocess, ENet, argmax, overlay render pass) and one submission. Nothing is read back
//! unless asked ([`App::class_maps`], the documented test hook).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use wasm_bindgen::prelude::*;
use web_sys::{HtmlCanvasElement, HtmlVideoElement, ImageBitmap};

use crate::model::Model;
use crate::runtime::{FrameOptions, Gpu, Overlay, OverlayBinding, SmoothBinding, Smoother, Timing};
use crate::segment::{Segmenter, SizeRequest};

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

/// What one plan's frames draw with: the overlay's bind group (reading the smoothed class map
/// or the plan's own), the smoothing state, and the sizes they were made for.
struct Bound {
    overlay: OverlayBinding,
    smooth: SmoothBinding,
    smoothed: bool,
    /// The test hook's readback: the shown class map, then the frame's own.
    readback: wgpu::Buffer,
    net: (usize, usize),
    src: (usize, usize),
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
    binding: Option<Bound>,
    smoothing: bool,
    strength: f32,
    short_side: usize,
    opacity: f32,
    in_flight: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    gpu_ms: Rc<RefCell<Option<f64>>>,
    skipped: u32,
    frames: u32,
}

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

#[wasm_bindgen]
impl App {
    /// Starts WebGPU on `canvas` and loads `weights` (an engine weights file). `on_lost` is
    /// called (with the reason) if the GPU device is lost, so the page can start a new App
    /// at once rather than at the next camera frame, which may be seconds away then.
    pub async fn create(
        canvas: HtmlCanvasElement,
        weights: Vec<u8>,
        on_lost: js_sys::Function,
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
        let gpu = Gpu::from_adapter(adapter).await.map_err(js_err)?;
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
        let segmenter = Segmenter::new(&gpu, &model).map_err(js_err)?;
        let smoother = Smoother::new(&gpu.device);
        Ok(App {
            gpu,
            surface,
            config,
            canvas,
            model,
            segmenter,
            overlay,
            smoother,
            binding: None,
            smoothing: true,
            strength: 0.7,
            short_side: 360,
            opacity: 0.5,
            in_flight: Arc::new(AtomicBool::new(false)),
            lost,
            gpu_ms: Rc::new(RefCell::new(None)),
            skipped: 0,
            frames: 0,
        })
    }

    /// Swaps in another model, validated exactly as the CLI validates it. On error the
    /// current model keeps running.
    pub fn load_weights(&mut self, weights: &[u8]) -> Result<(), JsError> {
        let model = Model::from_safetensors(weights).map_err(js_err)?;
        let segmenter = Segmenter::new(&self.gpu, &model).map_err(js_err)?;
        self.overlay
            .set_classes(&self.gpu.queue, &model.classes, model.void_class);
        self.model = model;
        self.segmenter = segmenter;
        self.binding = None;
        Ok(())
    }

    /// Class names and colours, as JSON `[{"name", "color": [r, g, b]}]`; void flagged.
    pub fn legend(&self) -> String {
        let items: Vec<serde_json::Value> = self
            .model
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| serde_json::json!({"name": c.name, "color": c.color, "void": Some(i) == self.model.void_class}))
            .collect();
        serde_json::Value::Array(items).to_string()
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
            "provenance": self.model.provenance,
        })
        .to_string()
    }

    /// The network input's shorter side (the longer follows the frame's aspect).
    pub fn set_short_side(&mut self, short_side: usize) -> Result<(), JsError> {
        crate::segment::network_size((1, 1), SizeRequest::ShortSide(short_side)).map_err(js_err)?;
        self.short_side = short_side;
        Ok(())
    }

    /// Temporal smoothing of the class map (on by default); switched on again, it starts
    /// afresh.
    pub fn set_smoothing(&mut self, on: bool) {
        self.smoothing = on;
    }

    /// How much of the past an entirely uncertain pixel keeps, 0 (none) to 1.
    pub fn set_smoothing_strength(&mut self, strength: f32) {
        self.strength = strength.clamp(0.0, 1.0);
    }

    pub fn set_opacity(&mut self, opacity: f32) {
        self.opacity = opacity.clamp(0.0, 1.0);
    }

    /// True while the GPU still works on the last frame: a new frame would queue, so the
    /// caller skips it.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Relaxed)
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Relaxed)
    }

    /// GPU milliseconds of a recent frame (timestamp queries), if the adapter has them.
    pub fn gpu_ms(&self) -> Option<f64> {
        *self.gpu_ms.borrow()
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

    /// Draws the last result again (new opacity while paused); no network work.
    pub fn redraw(&mut self) -> Result<(), JsError> {
        let Some(bound) = &self.binding else {
            return Ok(());
        };
        let Some(frame) = current_texture(&self.surface, &self.gpu.device, &self.config) else {
            return Ok(());
        };
        let view = frame.texture.create_view(&Default::default());
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.overlay.encode(
            &self.gpu.queue,
            &mut encoder,
            &view,
            &bound.overlay,
            self.opacity,
        );
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.queue.present(frame);
        Ok(())
    }

    /// Test hook: destroys the GPU device, as a driver reset or a lost GPU would; the page
    /// notices through [`App::is_lost`] and starts a new one.
    pub fn destroy_device(&self) {
        self.gpu.device.destroy();
    }

    /// Test hook: the class maps of the last frame, a Promise of `{width, height, shown, raw}`
    /// (two `Uint8Array`s at the network size): what is shown (smoothed when smoothing is on)
    /// and the frame's own, read in one copy so both belong to the same frame. Reads back from
    /// the GPU; not for the frame loop. The wait holds nothing of the App, so frames go on.
    pub fn class_maps(&self) -> Result<js_sys::Promise, JsError> {
        let Some(bound) = &self.binding else {
            return Err(JsError::new("no frame has been segmented yet"));
        };
        let net = bound.net;
        // The plan is cached; asking for the same sizes returns it without work.
        let plan = self
            .segmenter
            .cached_plan(net, bound.src)
            .ok_or_else(|| JsError::new("no plan"))?;
        let own = plan.class_buffer();
        let shown = if bound.smoothed {
            bound.smooth.class_buffer()
        } else {
            own
        };
        let size = own.size();
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(shown, 0, &bound.readback, 0, size);
        encoder.copy_buffer_to_buffer(own, 0, &bound.readback, size, size);
        self.gpu.queue.submit([encoder.finish()]);
        let (gpu, buffer) = (self.gpu.clone(), bound.readback.clone());
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let bytes = gpu
                .read_buffer(&buffer)
                .await
                .map_err(|e| JsValue::from(js_err(e)))?;
            let classes: Vec<u8> = bytes.chunks_exact(4).map(|b| b[0]).collect();
            let (shown, raw) = classes.split_at(classes.len() / 2);
            let out = js_sys::Object::new();
            js_sys::Reflect::set(&out, &"width".into(), &(net.0 as u32).into())?;
            js_sys::Reflect::set(&out, &"height".into(), &(net.1 as u32).into())?;
            js_sys::Reflect::set(&out, &"shown".into(), &js_sys::Uint8Array::from(shown))?;
            js_sys::Reflect::set(&out, &"raw".into(), &js_sys::Uint8Array::from(raw))?;
            Ok(out.into())
        }))
    }
}

impl App {
    fn frame(
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
        let net = crate::segment::network_size(src, SizeRequest::ShortSide(self.short_side))
            .map_err(js_err)?;
        // A new plan's allocations are confirmed by the GPU asynchronously; its first frame
        // waits for that answer (the caller tries again on the next frame).
        let Some(plan) = self.segmenter.plan(net, src).map_err(js_err)? else {
            return Ok(false);
        };
        if (self.config.width as usize, self.config.height as usize) != src {
            self.canvas.set_width(src.0 as u32);
            self.canvas.set_height(src.1 as u32);
            self.config.width = src.0 as u32;
            self.config.height = src.1 as u32;
            self.surface.configure(&self.gpu.device, &self.config);
        }
        let Some(target) = current_texture(&self.surface, &self.gpu.device, &self.config) else {
            return Ok(false);
        };
        let current = matches!(&self.binding, Some(b) if b.net == net && b.src == src);
        if !current {
            let smooth = self.smoother.bind(&self.gpu.device, plan);
            let overlay = self
                .overlay
                .bind(&self.gpu.device, plan, smooth.class_buffer());
            let readback = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("class maps readback"),
                size: 2 * plan.class_buffer().size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.binding = Some(Bound {
                overlay,
                smooth,
                smoothed: true,
                readback,
                net,
                src,
            });
        }
        let bound = self.binding.as_mut().expect("just set");
        if bound.smoothed != self.smoothing {
            // The overlay reads the smoothed class map or the plan's own.
            let classes = if self.smoothing {
                bound.smooth.reset();
                bound.smooth.class_buffer()
            } else {
                plan.class_buffer()
            };
            bound.overlay = self.overlay.bind(&self.gpu.device, plan, classes);
            bound.smoothed = self.smoothing;
        }
        let bound = self.binding.as_ref().expect("just set");
        self.gpu.queue.copy_external_image_to_texture(
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
        let view = target.texture.create_view(&Default::default());
        let timing = if plan.has_timestamps() && !plan.timings_pending() {
            Timing::Frame
        } else {
            Timing::Off
        };
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        plan.encode(
            &mut encoder,
            FrameOptions {
                read_classes: false,
                timing,
            },
        );
        if self.smoothing {
            self.smoother
                .encode(&self.gpu.queue, &mut encoder, &bound.smooth, self.strength);
        }
        self.overlay.encode(
            &self.gpu.queue,
            &mut encoder,
            &view,
            &bound.overlay,
            self.opacity,
        );
        self.in_flight.store(true, Relaxed);
        self.gpu.queue.submit([encoder.finish()]);
        let in_flight = self.in_flight.clone();
        self.gpu
            .queue
            .on_submitted_work_done(move || in_flight.store(false, Relaxed));
        if timing != Timing::Off {
            let slot = self.gpu_ms.clone();
            plan.request_timings(move |t| {
                if let Some(f) = t.first() {
                    *slot.borrow_mut() = Some(f.ms);
                }
            });
        }
        self.gpu.queue.present(target);
        self.frames += 1;
        Ok(true)
    }
}
