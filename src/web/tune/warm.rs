//! A candidate's pipelines compiled by the browser in the background
//! (`createComputePipelineAsync`, reached through wgpu's `Device::as_webgpu`), so building its
//! engine later finds them compiled and the frames on screen never wait for a compile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::super::now_ms;
use crate::kernels::Precision;
use crate::runtime::PipelineSpec;

/// Where a background compile stands.
#[derive(Clone, Debug)]
pub(super) enum Warm {
    Pending,
    /// Compiled, at this time of the page's clock (ms).
    Ready(f64),
    Failed(String),
}

/// Has the browser compile `specs` in the background and says when all are ready; where it
/// offers no `createComputePipelineAsync` (or this is not WebGPU), ready at once, and the
/// engine's own requests compile them.
pub(super) fn warm(
    device: &wgpu::Device,
    precision: Precision,
    specs: &[PipelineSpec],
) -> Rc<RefCell<Warm>> {
    let state = Rc::new(RefCell::new(Warm::Ready(now_ms())));
    let Some(gpu_device) = device.as_webgpu() else {
        return state;
    };
    let dev: &JsValue = gpu_device.as_ref();
    let method = |name: &str| {
        Reflect::get(dev, &name.into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
    };
    let (Some(create_module), Some(create_async)) = (
        method("createShaderModule"),
        method("createComputePipelineAsync"),
    ) else {
        return state;
    };
    let set = |o: &Object, k: &str, v: &JsValue| {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(o, &k.into(), v);
    };
    let mut modules: HashMap<&str, JsValue> = HashMap::new();
    let promises = Array::new();
    for spec in specs {
        let module = match modules.get(spec.kernel.name) {
            Some(m) => m.clone(),
            None => {
                // The same label and code as the engine's own module, so the browser's cache
                // knows it again.
                let desc = Object::new();
                set(&desc, "label", &spec.kernel.name.into());
                set(
                    &desc,
                    "code",
                    &spec.kernel.source(precision).as_ref().into(),
                );
                match create_module.call1(dev, &desc) {
                    Ok(m) => {
                        modules.insert(spec.kernel.name, m.clone());
                        m
                    }
                    Err(e) => {
                        *state.borrow_mut() = Warm::Failed(format!("{e:?}"));
                        return state;
                    }
                }
            }
        };
        let stage = Object::new();
        set(&stage, "module", &module);
        set(&stage, "entryPoint", &spec.entry.into());
        if !spec.constants.is_empty() {
            let constants = Object::new();
            for &(k, v) in &spec.constants {
                set(&constants, k, &v.into());
            }
            set(&stage, "constants", &constants);
        }
        let desc = Object::new();
        set(&desc, "label", &spec.kernel.name.into());
        set(&desc, "layout", &"auto".into());
        set(&desc, "compute", &stage);
        match create_async.call1(dev, &desc) {
            Ok(p) => {
                promises.push(&p);
            }
            Err(e) => {
                *state.borrow_mut() = Warm::Failed(format!("{e:?}"));
                return state;
            }
        }
    }
    *state.borrow_mut() = Warm::Pending;
    let done = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let all = wasm_bindgen_futures::JsFuture::from(Promise::all(&promises)).await;
        *done.borrow_mut() = match all {
            Ok(_) => Warm::Ready(now_ms()),
            Err(e) => Warm::Failed(
                e.dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
                    .unwrap_or_else(|| format!("{e:?}")),
            ),
        };
    });
    state
}
