//! The runtime: device, weights on the GPU, pipelines, and per-size plans that record a
//! frame as one command encoder and one submission.

mod engine;
pub mod overlay;
mod plan;

pub use engine::Engine;
pub use overlay::{Overlay, OverlayBinding};
pub use plan::{FrameOptions, Plan, StageTiming, Timing};

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no GPU adapter found (natively: install a Vulkan, Metal or DX12 driver; on Linux without a GPU, Mesa's lavapipe in mesa-vulkan-drivers works)"
    )]
    NoAdapter,
    #[error("the GPU device could not be created: {0}")]
    Device(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("network input size {w}x{h}: {reason}")]
    Size { w: usize, h: usize, reason: String },
    #[error("image of {got} bytes does not match {w}x{h} RGBA8 ({want} bytes)")]
    ImageBytes {
        w: usize,
        h: usize,
        got: usize,
        want: usize,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
}

/// A device and queue, with the adapter they came from.
#[derive(Clone, Debug)]
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
}

impl Gpu {
    /// The default adapter (high performance), with timestamp queries when offered and the
    /// adapter's own limits (large frames need more than WebGPU's defaults).
    pub async fn new() -> Result<Gpu, EngineError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|_| EngineError::NoAdapter)?;
        Gpu::from_adapter(adapter).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu, EngineError> {
        let wanted = wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("enet"),
                required_features: adapter.features() & wanted,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::Device(e.to_string()))?;
        Ok(Gpu {
            adapter,
            device,
            queue,
        })
    }

    pub fn info(&self) -> wgpu::AdapterInfo {
        self.adapter.get_info()
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        let i = self.info();
        format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
    }

    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Waits for `buffer` (MAP_READ) to map and copies out its bytes.
    pub async fn read_buffer(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, EngineError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Gpu(e.to_string()))?;
        rx.await
            .map_err(|_| EngineError::Gpu("buffer mapping was cancelled".into()))?
            .map_err(|e| EngineError::Gpu(e.to_string()))?;
        let bytes = buffer
            .get_mapped_range(..)
            .map_err(|e| EngineError::Gpu(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}
