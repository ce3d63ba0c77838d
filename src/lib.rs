//! ENet semantic segmentation as WGSL compute shaders on wgpu.
//!
//! Data flows one way: frame -> tensor ([`runtime`] preprocess) -> network
//! ([`model::Graph`] run by the [`runtime`]) -> class map ([`segment::ClassMap`]).
//! The same library runs natively and in the browser (wasm32); its API is async, with
//! blocking wrappers for native callers in [`blocking`].

// Unsafe code lives only in the CPU engine's SIMD kernels (`cpu`), which allow it, and in one
// view of wasm memory for the page's CPU path (`web::cpu`).
#![deny(unsafe_code)]

pub mod adaptive;
pub mod assets;
pub mod cpu;
pub mod kernels;
pub mod model;
pub mod picture;
pub mod runtime;
pub mod segment;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use model::{Layout, Model, ModelError};
pub use runtime::{Checked, Engine, EngineError, Gpu, Plan};
pub use segment::{ClassMap, Segmenter};

/// Blocking wrappers for native code (the CLI and tests).
#[cfg(not(target_arch = "wasm32"))]
pub mod blocking {
    pub use pollster::block_on;

    use crate::runtime::{EngineError, Gpu};

    pub fn gpu() -> Result<Gpu, EngineError> {
        block_on(Gpu::new())
    }
}
