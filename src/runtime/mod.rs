//! The runtime: device, weights on the GPU, pipelines, and per-size plans that record a
//! frame as one command encoder and one submission.

mod engine;
pub mod fuse;
pub mod overlay;
mod plan;
pub mod refine;
pub mod smooth;
pub mod tune;
pub mod upscale;

pub use engine::{Engine, FusedConfig, PipelineSpec, pipeline_specs};
pub use overlay::{DrawOptions, Overlay, OverlayBinding, View};
pub use plan::{FrameOptions, Plan, StageTiming, Timing};
pub use refine::{RefineBinding, Refiner};
pub use smooth::{SmoothBinding, Smoother};
pub use upscale::{UpscaleBinding, Upscaler};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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
    #[error("a {w}x{h} frame cannot be segmented: {reason}")]
    Source { w: usize, h: usize, reason: String },
    #[error("image of {got} bytes does not match {w}x{h} RGBA8 ({want} bytes)")]
    ImageBytes {
        w: usize,
        h: usize,
        got: usize,
        want: usize,
    },
    #[error("CPU engine: {0}")]
    Cpu(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error(
        "not enough GPU memory for a {w}x{h} network input ({mib} MiB of buffers): choose a smaller input size"
    )]
    OutOfMemory { w: usize, h: usize, mib: u64 },
}

/// Whether `rgba` holds an RGBA8 frame of `w` x `h` (both engines take frames so).
pub fn check_rgba(rgba: &[u8], (w, h): (usize, usize)) -> Result<(), EngineError> {
    if rgba.len() == w * h * 4 {
        return Ok(());
    }
    Err(EngineError::ImageBytes {
        w,
        h,
        got: rgba.len(),
        want: w * h * 4,
    })
}

/// A bind group of a pipeline made by its kernel's own module: the parameters at
/// `@binding(0)`, then `bindings` as a kernel's binding struct lists them.
fn bind_group(
    device: &wgpu::Device,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    params: wgpu::BindingResource,
    bindings: Vec<wgpu::BindingResource>,
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(params)
        .chain(bindings)
        .enumerate()
        .map(|(binding, resource)| wgpu::BindGroupEntry {
            binding: binding as u32,
            resource,
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

#[cfg(not(target_arch = "wasm32"))]
type ScopeAnswer = Pin<Box<dyn Future<Output = Option<wgpu::Error>> + Send>>;
#[cfg(target_arch = "wasm32")]
type ScopeAnswer = Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>;

/// Something made on the GPU whose allocation and validation errors have not been heard
/// yet. WebGPU reports them asynchronously (on the web, as a promise), so the value is held
/// until the answer comes: [`Checked::poll`] asks without blocking, [`Checked::wait`] waits.
pub struct Checked<T> {
    value: T,
    answer: Option<ScopeAnswer>,
}

impl<T> Checked<T> {
    pub fn value(&self) -> &T {
        &self.value
    }

    /// `Ready(Ok)` once the GPU said the work went through, `Ready(Err)` with the error it
    /// caught, `Pending` while it has not answered. Never blocks: the answer's future keeps
    /// what arrives, so polling again later sees it.
    pub fn poll(&mut self) -> Poll<Result<(), wgpu::Error>> {
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(error) => {
                self.answer = None;
                Poll::Ready(error.map_or(Ok(()), Err))
            }
        }
    }

    /// Waits for the GPU's answer.
    pub async fn wait(&mut self) -> Result<(), wgpu::Error> {
        match self.answer.take() {
            None => Ok(()),
            Some(answer) => answer.await.map_or(Ok(()), Err),
        }
    }
}

/// The backends to try, in order: the ones `WGPU_BACKEND` names when it is set; otherwise
/// Vulkan, Metal, DX12 (and the browser's WebGPU), then OpenGL only where none of those has an
/// adapter: starting EGL on a headless Linux machine prints warnings and finds nothing better.
pub fn backend_choices() -> Vec<wgpu::Backends> {
    match wgpu::Backends::from_env() {
        Some(b) => vec![b],
        None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
    }
}

/// An instance for `backends`, with the other instance options from the environment.
pub fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Which device limits the engine asks for. Every kernel runs within WebGPU's defaults (256
/// invocations and 16 KiB of workgroup memory per workgroup, at most 7 storage buffers per
/// stage, of 8 allowed); only the size of one activation buffer grows with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limits {
    /// WebGPU's defaults: a 128 MiB storage binding holds the activations of frames up to
    /// about 2 megapixels (1920x1080). What the page asks for.
    Default,
    /// The defaults with the adapter's largest buffers and storage bindings, for larger
    /// pictures (the CLI segments up to 2048 pixels a side at native size).
    LargeFrames,
}

impl Limits {
    pub fn for_adapter(self, adapter: &wgpu::Adapter) -> wgpu::Limits {
        let defaults = wgpu::Limits::default();
        match self {
            Limits::Default => defaults,
            Limits::LargeFrames => {
                let a = adapter.limits();
                wgpu::Limits {
                    max_buffer_size: a.max_buffer_size.max(defaults.max_buffer_size),
                    max_storage_buffer_binding_size: a
                        .max_storage_buffer_binding_size
                        .max(defaults.max_storage_buffer_binding_size),
                    ..defaults
                }
            }
        }
    }
}

/// A device and queue, with the adapter they came from.
#[derive(Clone, Debug)]
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
}

impl Gpu {
    /// The default adapter (high performance), with timestamp queries when offered and
    /// [`Limits::LargeFrames`].
    pub async fn new() -> Result<Gpu, EngineError> {
        for backends in backend_choices() {
            let adapter = instance(backends)
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    ..Default::default()
                })
                .await;
            if let Ok(adapter) = adapter {
                return Gpu::from_adapter(adapter).await;
            }
        }
        Err(EngineError::NoAdapter)
    }

    /// A device on `adapter` with [`Limits::LargeFrames`] (the CLI's pictures).
    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu, EngineError> {
        Gpu::from_adapter_with(adapter, Limits::LargeFrames).await
    }

    /// A device on `adapter` with the limits `limits` asks for, and timestamp queries when
    /// offered.
    pub async fn from_adapter_with(
        adapter: wgpu::Adapter,
        limits: Limits,
    ) -> Result<Gpu, EngineError> {
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("enet"),
                required_features: adapter.features() & wanted,
                required_limits: limits.for_adapter(&adapter),
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

    /// Runs `make` inside out-of-memory and validation error scopes, so that a failed
    /// allocation comes back as an error instead of reaching the device's uncaptured-error
    /// handler (which natively panics).
    pub fn checked<T>(
        &self,
        make: impl FnOnce() -> Result<T, EngineError>,
    ) -> Result<Checked<T>, EngineError> {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let made = make();
        // Innermost first.
        let oom = oom.pop();
        let validation = validation.pop();
        let value = made?;
        Ok(Checked {
            value,
            answer: Some(Box::pin(async move {
                match oom.await {
                    Some(e) => Some(e),
                    None => validation.await,
                }
            })),
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

    /// Whether kernels may store activations and weights in f16.
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// f16 where the device has `shader-f16`, f32 elsewhere.
    pub fn best_precision(&self) -> crate::kernels::Precision {
        if self.has_f16() {
            crate::kernels::Precision::F16
        } else {
            crate::kernels::Precision::F32
        }
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
