//! Any bytes as a weights file: the loader (safetensors, metadata, model build and BatchNorm
//! folding) and the PyTorch-ENet importer must return an error, never panic.
#![no_main]

use enet_wgpu::model::import::{ImportOptions, import};
use enet_wgpu::model::{Layout, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Model::from_safetensors(data) {
        // A model that loads must also describe a valid network.
        let _ = model.graph.shapes(16, 16);
    }
    let _ = import(
        data,
        ImportOptions::camvid(Layout::PytorchEnet),
    );
});
