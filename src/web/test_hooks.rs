//! What only the browser tests call: a lost device on demand, and the class maps read back.
//! Nothing here runs in the frame loop.

use wasm_bindgen::prelude::*;

use super::{App, js_err};

#[wasm_bindgen]
impl App {
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
        let (own, shown) = (plan.class_buffer(), bound.shown_classes(plan));
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
