//! The page's CPU path: the CPU engine (wasm SIMD) for a Web Worker, where WebGPU is missing,
//! gives no device, or only a software fallback adapter. The worker owns a [`CpuApp`]; each
//! frame in is an RGBA picture, each frame out the class map at the network size, smoothed
//! as the GPU path smooths it, the size adapted to the frame rate as on the GPU path.

use wasm_bindgen::prelude::*;

use super::settings::SIZE_STEPS;
use crate::adaptive::AdaptiveSize;
use crate::cpu::{CpuEngine, CpuPlan, now_ms, ops};
use crate::model::Model;
use crate::segment::{SizeRequest, check_source, network_size};

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Where the CPU path starts when the size is automatic: the smallest step, so the first
/// overlay comes soon on a slow CPU; it steps up while frames keep the pace.
const AUTO_START: usize = 96;
/// The largest automatic shorter side on the CPU.
const AUTO_MAX: usize = 360;

/// Automatic size on the CPU: from [`AUTO_START`] up to [`AUTO_MAX`], 15 frames a second
/// until the page says its camera's rate.
fn auto_size() -> AdaptiveSize {
    let steps: Vec<usize> = SIZE_STEPS.into_iter().filter(|&s| s <= AUTO_MAX).collect();
    AdaptiveSize::new(&steps, AUTO_START, 1000.0 / 15.0)
}

#[wasm_bindgen]
pub struct CpuApp {
    model: Model,
    engine: CpuEngine,
    plan: Option<CpuPlan>,
    /// The smoothing's running probabilities (NHWC at the plan's size), and whether they
    /// hold a frame of this size.
    probs: Vec<f32>,
    primed: bool,
    shown: Vec<u8>,
    /// The frame's pixels, written by the page through [`CpuApp::frame_input`].
    input: Vec<u8>,
    /// `None`: a pinned shorter side.
    auto: Option<AdaptiveSize>,
    pinned: usize,
    last_ms: f64,
    frames: u32,
}

#[wasm_bindgen]
impl CpuApp {
    /// The engine with these weights (checked as the CLI checks them), on this thread.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: &[u8]) -> Result<CpuApp, JsError> {
        let model = Model::from_safetensors(weights).map_err(js_err)?;
        let engine = CpuEngine::new(&model.graph, model.normalization, Some(1)).map_err(js_err)?;
        Ok(CpuApp {
            model,
            engine,
            plan: None,
            probs: Vec::new(),
            primed: false,
            shown: Vec::new(),
            input: Vec::new(),
            auto: Some(auto_size()),
            pinned: AUTO_START,
            last_ms: 0.0,
            frames: 0,
        })
    }

    /// For the status line: "CPU (wasm SIMD, 1 thread)".
    pub fn describe(&self) -> String {
        self.engine.describe()
    }

    /// The model, as JSON `{"layout", "classes", "provenance"}` (what the GPU path's
    /// `describe` says of it).
    pub fn model_info(&self) -> String {
        serde_json::json!({
            "layout": self.model.layout.name(),
            "classes": self.model.num_classes(),
            "provenance": self.model.provenance,
        })
        .to_string()
    }

    /// Class names and colours, as JSON `[{"name", "color": [r, g, b], "void"}]`.
    pub fn legend(&self) -> String {
        super::legend(&self.model)
    }

    /// 0: automatic (starts small, follows the frame rate, never above the source's own
    /// size); else a pinned shorter side, one of the page's size steps.
    pub fn set_size(&mut self, short_side: usize) -> Result<(), JsError> {
        if short_side == 0 {
            if self.auto.is_none() {
                self.auto = Some(auto_size());
            }
        } else if SIZE_STEPS.contains(&short_side) {
            self.auto = None;
            self.pinned = short_side;
        } else {
            return Err(JsError::new(&format!(
                "size {short_side}: expected 0 (automatic) or one of {SIZE_STEPS:?}"
            )));
        }
        Ok(())
    }

    /// The frame time automatic size keeps within (from the camera's frame rate).
    pub fn set_target_ms(&mut self, ms: f64) {
        if let Some(a) = &mut self.auto {
            a.set_target_ms(ms);
        }
    }

    /// Where the next frame's RGBA8 pixels go (`bytes` of them): a view of the engine's own
    /// buffer, so a frame is copied once and nothing is allocated per frame. Valid until the
    /// next call into the engine; ask again for each frame.
    pub fn frame_input(&mut self, bytes: usize) -> js_sys::Uint8Array {
        if self.input.len() != bytes {
            // Sized again only when the source's size changes.
            self.input = vec![0; bytes];
        }
        // SAFETY: the view is used before anything else runs in this module (the caller fills
        // it, then calls `segment`), so wasm memory cannot grow meanwhile.
        #[allow(unsafe_code)]
        unsafe {
            js_sys::Uint8Array::view(&self.input)
        }
    }

    /// Segments the RGBA8 frame of `w` x `h` written into [`CpuApp::frame_input`]: the shown
    /// classes (smoothed by `strength`, 0 for none), one per pixel at [`CpuApp::net_size`],
    /// as a new array (it goes to another thread). A camera's or a video's frame must be one
    /// the page segments ([`check_source`]); a `still` picture of any size is taken as the GPU
    /// path takes it.
    pub fn segment(
        &mut self,
        w: usize,
        h: usize,
        strength: f32,
        still: bool,
    ) -> Result<js_sys::Uint8Array, JsError> {
        let rgba = std::mem::take(&mut self.input);
        let result = self
            .segment_rgba(&rgba, w, h, strength, still)
            .map(js_sys::Uint8Array::from);
        self.input = rgba;
        result
    }

    /// The last frame's time in the engine, ms.
    pub fn last_ms(&self) -> f64 {
        self.last_ms
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }
}

impl CpuApp {
    fn segment_rgba(
        &mut self,
        rgba: &[u8],
        w: usize,
        h: usize,
        strength: f32,
        still: bool,
    ) -> Result<&[u8], JsError> {
        let start = now_ms();
        if !still {
            check_source(w, h).map_err(js_err)?;
        }
        let request = match &mut self.auto {
            Some(a) => {
                a.set_ceiling(w.min(h));
                SizeRequest::ShortSideAtMost(a.short_side())
            }
            None => SizeRequest::ShortSide(self.pinned),
        };
        let net = network_size((w, h), request).map_err(js_err)?;
        let reuse =
            matches!(&self.plan, Some(p) if p.net_size() == net && p.source_size() == (w, h));
        if !reuse {
            self.plan = None;
            let plan = self.engine.plan(net, (w, h)).map_err(js_err)?;
            let c = self.model.num_classes();
            self.probs = vec![0.0; net.0 * net.1 * c];
            self.shown = vec![0; net.0 * net.1];
            // Probabilities of another size say nothing about these pixels.
            self.primed = false;
            self.plan = Some(plan);
        }
        let plan = self.plan.as_mut().expect("made above");
        self.engine.run(plan, rgba).map_err(js_err)?;
        if strength > 0.0 {
            let c = self.model.num_classes();
            ops::smooth(
                plan.logits_nhwc(self.engine.graph()),
                c,
                &mut self.probs,
                strength,
                !self.primed,
                &mut self.shown,
            );
            self.primed = true;
        } else {
            // Unsmoothed: the frame's own classes, no softmax; smoothing starts afresh.
            self.shown.copy_from_slice(plan.classes());
            self.primed = false;
        }
        self.frames += 1;
        let end = now_ms();
        self.last_ms = end - start;
        if let Some(a) = &mut self.auto {
            a.observe(end - start, end);
        }
        Ok(&self.shown)
    }
}

#[wasm_bindgen]
impl CpuApp {
    /// The last frame's own classes, unsmoothed.
    pub fn raw_classes(&self) -> Vec<u8> {
        self.plan
            .as_ref()
            .map_or_else(Vec::new, |p| p.classes().to_vec())
    }

    /// `[w, h]` of the last frame's network input.
    pub fn net_size(&self) -> Vec<u32> {
        self.plan.as_ref().map_or_else(Vec::new, |p| {
            let (w, h) = p.net_size();
            vec![w as u32, h as u32]
        })
    }

    /// Times `frames` frames of the last frame's sizes step by step (after one whole frame
    /// has run): JSON `[{"step", "ms"}]`, the mean per frame (for the benchmark script).
    pub fn profile(&mut self, frames: u32) -> Result<String, JsError> {
        let Some(plan) = self.plan.as_mut() else {
            return Err(JsError::new("run a frame first"));
        };
        let labels = self.engine.step_labels();
        let mut times = vec![0.0; labels.len()];
        for _ in 0..frames.max(1) {
            self.engine
                .run_timed(plan, &self.input, Some(&mut times))
                .map_err(js_err)?;
        }
        let n = frames.max(1) as f64;
        let steps: Vec<serde_json::Value> = labels
            .iter()
            .zip(&times)
            .map(|(l, t)| serde_json::json!({"step": l, "ms": t / n}))
            .collect();
        Ok(serde_json::Value::Array(steps).to_string())
    }
}
