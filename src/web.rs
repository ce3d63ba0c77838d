//! The browser side: camera frames into the engine and the overlay onto a WebGPU canvas.
//!
//! JavaScript (www/app.js) owns the camera, the UI and the frame clock; [`App`] owns the GPU.
//! Per frame: one external-image copy into the plan's source texture, then one encoder
//! (preprocess, ENet, argmax, overlay render pass) and one submission. Nothing is read back
//! unless asked ([`App::class_map`], the documented test hook).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use wasm_bindgen::prelude::*;
use web_sys::{HtmlCanvasElement, HtmlVideoElement, ImageBitmap};

use crate::model::Model;
use crate::runtime::{FrameOptions, Gpu, Overlay, OverlayBinding, Timing};
use crate::segment::Segmenter;

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

/// The overlay's bind group with the network and source sizes it was made for.
type Bound = (OverlayBinding, (usize, usize), (usize, usize));

#[wasm_bindgen]
pub struct App {
    gpu: Gpu,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    canvas: HtmlCanvasElement,
    model: Model,
    segmenter: Segmenter,
    overlay: Overlay,
    binding: Option<Bound>,
    net_height: usize,
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

/// Network width for a frame: `height` scaled by the frame's aspect, a multiple of 8, at
/// most 2048 (a panorama is squeezed rather than made into a huge network).
fn net_size(src: (usize, usize), height: usize) -> (usize, usize) {
    let w = (src.0 as f64 * height as f64 / src.1.max(1) as f64 / 8.0).round() as usize * 8;
    (w.clamp(8, crate::segment::MAX_AUTO_SIDE), height)
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
        Ok(App {
            gpu,
            surface,
            config,
            canvas,
            model,
            segmenter,
            overlay,
            binding: None,
            net_height: 360,
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

    /// Network input height (the width follows the frame's aspect, rounded to 8).
    pub fn set_network_height(&mut self, height: usize) -> Result<(), JsError> {
        if height == 0 || !height.is_multiple_of(8) || height > crate::segment::MAX_SIDE {
            return Err(JsError::new(&format!(
                "network height {height}: a multiple of 8 up to 4096"
            )));
        }
        self.net_height = height;
        Ok(())
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
        self.binding
            .as_ref()
            .and_then(|(_, net, src)| self.segmenter.cached_plan(*net, *src))
            .map_or(0.0, |p| p.memory_bytes() as f64)
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
        let Some((binding, _, _)) = &self.binding else {
            return Ok(());
        };
        let Some(frame) = current_texture(&self.surface, &self.gpu.device, &self.config) else {
            return Ok(());
        };
        let view = frame.texture.create_view(&Default::default());
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.overlay
            .encode(&self.gpu.queue, &mut encoder, &view, binding, self.opacity);
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.queue.present(frame);
        Ok(())
    }

    /// Test hook: destroys the GPU device, as a driver reset or a lost GPU would; the page
    /// notices through [`App::is_lost`] and starts a new one.
    pub fn destroy_device(&self) {
        self.gpu.device.destroy();
    }

    /// Test hook: the class map of the last frame, `{width, height, data: Uint8Array}` at the
    /// network size. Reads back from the GPU; not for the frame loop.
    pub async fn class_map(&self) -> Result<JsValue, JsError> {
        let Some((_, net, src)) = self.binding else {
            return Err(JsError::new("no frame has been segmented yet"));
        };
        // The plan is cached; asking for the same sizes returns it without work.
        let plan = self
            .segmenter
            .cached_plan(net, src)
            .ok_or_else(|| JsError::new("no plan"))?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        plan.encode_class_readback(&mut encoder);
        self.gpu.queue.submit([encoder.finish()]);
        let data = plan.read_classes().await.map_err(js_err)?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"width".into(), &(net.0 as u32).into())
            .map_err(|_| JsError::new("reflect"))?;
        js_sys::Reflect::set(&out, &"height".into(), &(net.1 as u32).into())
            .map_err(|_| JsError::new("reflect"))?;
        js_sys::Reflect::set(
            &out,
            &"data".into(),
            &js_sys::Uint8Array::from(&data[..]).into(),
        )
        .map_err(|_| JsError::new("reflect"))?;
        Ok(out.into())
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
        let net = net_size(src, self.net_height);
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
        if !matches!(&self.binding, Some((_, n, s)) if *n == net && *s == src) {
            self.binding = Some((self.overlay.bind(&self.gpu.device, plan), net, src));
        }
        let binding = &self.binding.as_ref().expect("just set").0;
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
        self.overlay
            .encode(&self.gpu.queue, &mut encoder, &view, binding, self.opacity);
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
