//! Which engine a command runs: the GPU's or the CPU's, and one type for either.

use anyhow::{Result, bail};
use clap::ValueEnum;

use super::PrecisionArg;
use enet_wgpu::cpu::CpuSegmenter;
use enet_wgpu::kernels::upscale::Upscale;
use enet_wgpu::segment::ClassMap;
use enet_wgpu::{EngineError, Gpu, Model, Segmenter};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum BackendArg {
    /// A hardware GPU if there is one, else the CPU engine (a CPU emulation of a GPU, such as
    /// lavapipe or SwiftShader, counts as none: the CPU engine is many times faster there).
    #[default]
    Auto,
    Gpu,
    Cpu,
}

/// The engine chosen, before a model is loaded into it.
pub enum Chosen {
    Gpu(Gpu),
    Cpu,
}

/// Resolves `--backend`. `gpu_only` names an option only the GPU engine has (f16): `auto`
/// then takes whatever GPU there is, and `cpu` is refused.
pub fn choose(backend: BackendArg, gpu_only: Option<&str>) -> Result<Chosen> {
    match backend {
        BackendArg::Gpu => Ok(Chosen::Gpu(super::gpu()?)),
        BackendArg::Cpu => match gpu_only {
            Some(what) => bail!("{what} is an option of the GPU engine, not of the CPU engine"),
            None => Ok(Chosen::Cpu),
        },
        BackendArg::Auto => match enet_wgpu::blocking::gpu() {
            Ok(gpu) if gpu_only.is_some() || !is_emulation(&gpu) => Ok(Chosen::Gpu(gpu)),
            Ok(gpu) => {
                eprintln!(
                    "engine: the CPU's (the only GPU here, {}, is an emulation; --backend gpu to use it)",
                    gpu.describe()
                );
                Ok(Chosen::Cpu)
            }
            Err(e) if gpu_only.is_some() => Err(anyhow::Error::new(e).context(format!(
                "cannot start the GPU, which {} needs",
                gpu_only.unwrap_or_default()
            ))),
            Err(e) => {
                eprintln!("engine: the CPU's ({e})");
                Ok(Chosen::Cpu)
            }
        },
    }
}

/// A GPU that is really the CPU running a driver (lavapipe, SwiftShader, WARP).
pub fn is_emulation(gpu: &Gpu) -> bool {
    gpu.info().device_type == wgpu::DeviceType::Cpu
}

/// The option among these that only the GPU engine has, if any.
pub fn gpu_only(precisions: &[(&'static str, Option<PrecisionArg>)]) -> Option<&'static str> {
    precisions
        .iter()
        .find(|(_, p)| *p == Some(PrecisionArg::F16))
        .map(|(name, _)| *name)
}

/// A model loaded into the chosen engine.
pub enum Runner {
    Gpu(Box<Segmenter>),
    Cpu(Box<CpuSegmenter>),
}

impl Runner {
    pub fn cpu(model: &Model, threads: Option<usize>) -> Result<Runner> {
        Ok(Runner::Cpu(Box::new(CpuSegmenter::new(model, threads)?)))
    }

    /// "GPU (<adapter>), fused f16" or "CPU (AVX2+FMA, 2 threads)".
    pub fn describe(&self) -> String {
        match self {
            Runner::Gpu(s) => {
                let e = s.engine();
                format!("GPU ({}), {}", e.gpu().describe(), e.config().name())
            }
            Runner::Cpu(s) => s.engine().describe(),
        }
    }

    /// The GPU's configuration ("fused f16") or "cpu f32 (AVX2+FMA, 2 threads)".
    pub fn engine_name(&self) -> String {
        match self {
            Runner::Gpu(s) => s.engine().config().name(),
            Runner::Cpu(s) => {
                let e = s.engine();
                format!("cpu f32 ({}, {} threads)", e.isa().name(), e.threads())
            }
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Runner::Gpu(_) => "gpu",
            Runner::Cpu(_) => "cpu",
        }
    }

    pub fn precision(&self) -> enet_wgpu::kernels::Precision {
        match self {
            Runner::Gpu(s) => s.engine().precision(),
            Runner::Cpu(_) => enet_wgpu::kernels::Precision::F32,
        }
    }

    /// The largest picture side the engine takes as a source frame.
    pub fn max_source_side(&self) -> u32 {
        match self {
            Runner::Gpu(s) => s.engine().gpu().device.limits().max_texture_dimension_2d,
            Runner::Cpu(_) => enet_wgpu::segment::MAX_SOURCE_SIDE as u32,
        }
    }

    /// The most output pixels one upscale makes at once.
    pub fn max_output_pixels(&self) -> usize {
        match self {
            Runner::Gpu(s) => {
                s.engine()
                    .gpu()
                    .device
                    .limits()
                    .max_storage_buffer_binding_size as usize
                    / 4
            }
            Runner::Cpu(_) => usize::MAX,
        }
    }

    pub fn segment(
        &mut self,
        rgba: &[u8],
        (w, h): (usize, usize),
        net: (usize, usize),
    ) -> Result<ClassMap, EngineError> {
        match self {
            Runner::Gpu(s) => pollster::block_on(s.segment(rgba, w, h, net)),
            Runner::Cpu(s) => s.segment(rgba, w, h, net),
        }
    }

    pub fn segment_to(
        &mut self,
        rgba: &[u8],
        source: (usize, usize),
        net: (usize, usize),
        out: (usize, usize),
        mode: Upscale,
    ) -> Result<ClassMap, EngineError> {
        match self {
            Runner::Gpu(s) => pollster::block_on(s.segment_to(rgba, source, net, out, mode)),
            Runner::Cpu(s) => s.segment_to(rgba, source, net, out, mode),
        }
    }
}
