//! Everything that lives as long as a model: pipelines and the packed weights. Plans for
//! input sizes are made from it in `plan.rs` (which uses this module; this one does not use
//! that).

use std::collections::{HashMap, HashSet};

use wgpu::util::DeviceExt;

use super::fuse::{self, Step};

use super::{EngineError, Gpu};
use crate::kernels::bottleneck::{CPU_THREADS, THREADS};
use crate::kernels::{self, KernelSource, OpOffsets, Pipeline, Precision};
use crate::model::Normalization;
use crate::model::graph::{Conv, Graph, Op};

/// Every pipeline of an engine, by what a [`Call`](kernels::Call) asks for.
type Pipelines = HashMap<Pipeline, wgpu::ComputePipeline>;

/// One pipeline an engine builds: its kernel, entry point and override constants. The list
/// ([`pipeline_specs`]) is what an engine compiles, so the page can have the browser compile
/// the same pipelines in the background first (`createComputePipelineAsync`) and build the
/// engine once they are ready.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    pub key: Pipeline,
    pub kernel: KernelSource,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    /// Whether workgroup memory is zeroed first: not for the specialised kernels, which
    /// write every entry of their tile before reading it.
    pub zero_workgroup_memory: bool,
}

/// The pipelines an engine running `config` compiles: every plain kernel's, and where it
/// fuses, one per kind of block in `graph`.
pub fn pipeline_specs(graph: &Graph, config: super::tune::Config) -> Vec<PipelineSpec> {
    let mut specs: Vec<PipelineSpec> = kernels::PLAIN_ENTRIES
        .iter()
        .map(|&(kernel, entry)| PipelineSpec {
            key: Pipeline::Entry(kernel, entry),
            kernel,
            entry,
            constants: Vec::new(),
            zero_workgroup_memory: true,
        })
        .collect();
    if config.fused {
        let fused = FusedConfig {
            threads: config.threads,
            tile_pixels: config.tile_pixels,
        };
        specs.extend(fused_specs(graph, fused));
    }
    specs
}

/// Compiles `specs` at `precision`, one shader module per kernel.
fn build_pipelines(
    device: &wgpu::Device,
    precision: Precision,
    specs: &[PipelineSpec],
) -> Pipelines {
    let mut modules: HashMap<&str, wgpu::ShaderModule> = HashMap::new();
    specs
        .iter()
        .map(|spec| {
            let module = modules.entry(spec.kernel.name).or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(spec.kernel.name),
                    source: wgpu::ShaderSource::Wgsl(spec.kernel.source(precision)),
                })
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(spec.kernel.name),
                layout: None,
                module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &spec.constants,
                    zero_initialize_workgroup_memory: spec.zero_workgroup_memory,
                },
                cache: None,
            });
            (spec.key, pipeline)
        })
        .collect()
}

/// A graph on a device: its weights uploaded and its pipelines built. Plans for concrete
/// input sizes come from [`Engine::plan`].
/// Cloning shares the pipelines and weights (GPU handles are reference-counted): a second
/// engine for its own plans, with nothing compiled or uploaded again.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) gpu: Gpu,
    pub(crate) graph: Graph,
    pub(crate) normalization: Normalization,
    /// Every pipeline plans use: the plain kernels' and the fused ones, specialised per
    /// kind of block in the graph.
    pub(crate) pipelines: Pipelines,
    pub(crate) weights: wgpu::Buffer,
    pub(crate) aux: wgpu::Buffer,
    pub(crate) offsets: Vec<OpOffsets>,
    /// Whether plans fuse bottlenecks ([`super::fuse`]); on unless turned off to compare.
    pub(crate) fusion: bool,
    /// How activations and weights are stored.
    pub(crate) precision: Precision,
    /// How the fused kernels are laid out.
    pub(crate) fused: FusedConfig,
}

/// The fused kernels' layout: shapes of their workgroups, so pipeline constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedConfig {
    /// Invocations per workgroup: [`THREADS`] on GPUs, [`CPU_THREADS`] on CPU
    /// emulations.
    pub threads: usize,
    /// Output pixels of a bottleneck's tile, at most: one of [`fuse::TILE_PIXELS`].
    pub tile_pixels: usize,
}

impl FusedConfig {
    /// What a device gets unless told otherwise.
    pub fn for_device(gpu: &Gpu) -> FusedConfig {
        let threads = if gpu.info().device_type == wgpu::DeviceType::Cpu {
            CPU_THREADS
        } else {
            THREADS
        };
        FusedConfig {
            threads,
            tile_pixels: fuse::PIXELS,
        }
    }

    fn check(&self) -> Result<(), EngineError> {
        let threads = [CPU_THREADS, THREADS];
        if !threads.contains(&self.threads) || !fuse::TILE_PIXELS.contains(&self.tile_pixels) {
            return Err(EngineError::Gpu(format!(
                "the fused kernels run {threads:?} invocations per workgroup and tiles of {:?} pixels, not {} and {}",
                fuse::TILE_PIXELS,
                self.threads,
                self.tile_pixels
            )));
        }
        Ok(())
    }
}

/// The fused pipelines of `shaders/bottleneck.wgsl` and `shaders/upsample.wgsl`, one per
/// kind of block the graph fuses; the shapes are pipeline constants, so the kernels' loops
/// unroll.
fn fused_specs(graph: &Graph, fused: FusedConfig) -> Vec<PipelineSpec> {
    let threads = fused.threads;
    let mut seen = HashSet::new();
    let mut specs = Vec::new();
    for step in fuse::steps_tiled(graph, fused.tile_pixels) {
        let (kernel, key, constants) = match step {
            Step::Bottleneck(b) => {
                let shape = b.shape(graph);
                (
                    kernels::BOTTLENECK,
                    Pipeline::Bottleneck(shape),
                    shape.constants(threads),
                )
            }
            Step::Upsample(u) => {
                let shape = u.shape(graph);
                (
                    kernels::UPSAMPLE,
                    Pipeline::Upsample(shape),
                    shape.constants(threads),
                )
            }
            _ => continue,
        };
        if seen.insert(key) {
            specs.push(PipelineSpec {
                key,
                kernel,
                entry: "main",
                constants,
                zero_workgroup_memory: false,
            });
        }
    }
    specs
}

/// Packs a convolution's `[cout][cin][kh][kw]` weights as vec4 over groups of 4 output
/// channels, zero-padded to `groups`, in the order the conv shaders read them.
fn pack_weights(conv: &Conv, groups: usize, out: &mut Vec<[f32; 4]>) {
    let per = conv.cin * conv.geom.kernel[0] * conv.geom.kernel[1];
    for g in 0..groups {
        for k in 0..per {
            let mut v = [0.0; 4];
            for (j, slot) in v.iter_mut().enumerate() {
                let co = g * 4 + j;
                if co < conv.cout {
                    *slot = conv.weight[co * per + k];
                }
            }
            out.push(v);
        }
    }
}

/// Per-channel values as vec4 groups, zero-padded.
fn pack_channels(values: &[f32], groups: usize, out: &mut Vec<[f32; 4]>) {
    for g in 0..groups {
        let mut v = [0.0; 4];
        for (j, slot) in v.iter_mut().enumerate() {
            if let Some(x) = values.get(g * 4 + j) {
                *slot = *x;
            }
        }
        out.push(v);
    }
}

impl Engine {
    /// Uploads the graph's weights and builds the pipelines, in f16 where the device has
    /// `shader-f16` ([`Gpu::best_precision`]).
    pub fn new(
        gpu: &Gpu,
        graph: &Graph,
        normalization: Normalization,
    ) -> Result<Engine, EngineError> {
        Engine::with_precision(gpu, graph, normalization, gpu.best_precision())
    }

    /// As [`Engine::new`], activations and weights stored at `precision`; f16 needs a device
    /// with `shader-f16`.
    pub fn with_precision(
        gpu: &Gpu,
        graph: &Graph,
        normalization: Normalization,
        precision: Precision,
    ) -> Result<Engine, EngineError> {
        Engine::with_config(
            gpu,
            graph,
            normalization,
            precision,
            FusedConfig::for_device(gpu),
        )
    }

    /// As [`Engine::with_precision`], the fused kernels laid out as `fused` says whatever the
    /// device: to test and compare every layout on any adapter.
    pub fn with_config(
        gpu: &Gpu,
        graph: &Graph,
        normalization: Normalization,
        precision: Precision,
        fused: FusedConfig,
    ) -> Result<Engine, EngineError> {
        Engine::build(gpu, graph, normalization, precision, fused, true)
    }

    /// An engine that runs as `config` says (e.g. the one measured fastest,
    /// [`super::tune`]); one that runs unfused compiles no fused pipelines.
    pub fn for_config(
        gpu: &Gpu,
        graph: &Graph,
        normalization: Normalization,
        config: super::tune::Config,
    ) -> Result<Engine, EngineError> {
        let fused = FusedConfig {
            threads: config.threads,
            tile_pixels: config.tile_pixels,
        };
        Engine::build(
            gpu,
            graph,
            normalization,
            config.precision,
            fused,
            config.fused,
        )
    }

    fn build(
        gpu: &Gpu,
        graph: &Graph,
        normalization: Normalization,
        precision: Precision,
        fused: FusedConfig,
        fusion: bool,
    ) -> Result<Engine, EngineError> {
        fused.check()?;
        if precision == Precision::F16 && !gpu.has_f16() {
            return Err(EngineError::Gpu(format!(
                "f16 needs the shader-f16 feature, which {} does not offer; use f32",
                gpu.describe()
            )));
        }
        let mut weights: Vec<[f32; 4]> = Vec::new();
        let mut aux: Vec<[f32; 4]> = Vec::new();
        let mut offsets = Vec::with_capacity(graph.ops.len());
        for op in &graph.ops {
            let off = OpOffsets {
                weights: weights.len() as u32,
                aux: aux.len() as u32,
            };
            match op {
                Op::Initial {
                    conv,
                    pool_scale,
                    pool_shift,
                    pool_slope,
                    ..
                } => {
                    if conv.cin != 3
                        || conv.cout != 13
                        || conv.geom.kernel != [3, 3]
                        || pool_scale.len() != 3
                    {
                        return Err(EngineError::Gpu(
                            "the initial block kernel expects 3 input channels and 13 conv filters of 3x3".into(),
                        ));
                    }
                    pack_weights(conv, 4, &mut weights);
                    pack_channels(&conv.bias, 4, &mut aux);
                    pack_channels(&conv.slope, 4, &mut aux);
                    pack_channels(pool_scale, 1, &mut aux);
                    pack_channels(pool_shift, 1, &mut aux);
                    pack_channels(pool_slope, 1, &mut aux);
                }
                Op::Conv { conv, residual, .. } => {
                    if conv.geom.transposed && conv.geom.dilation != [1, 1] {
                        return Err(EngineError::Gpu(
                            "transposed convolutions must have dilation 1".into(),
                        ));
                    }
                    let groups = kernels::conv_groups(conv.cout);
                    pack_weights(conv, groups, &mut weights);
                    pack_channels(&conv.bias, groups, &mut aux);
                    pack_channels(&conv.slope, groups, &mut aux);
                    let post = residual.as_ref().map(|r| r.slope.as_slice()).unwrap_or(&[]);
                    pack_channels(post, groups, &mut aux);
                }
                Op::MaxPool { .. } | Op::Unpool { .. } => {}
            }
            offsets.push(off);
        }
        // Storage bindings must not be empty.
        for buf in [&mut weights, &mut aux] {
            if buf.is_empty() {
                buf.push([0.0; 4]);
            }
        }
        let device = &gpu.device;
        let limit = device.limits().max_storage_buffer_binding_size as usize;
        let weight_bytes = weights.len() * 4 * precision.bytes();
        if weight_bytes > limit {
            return Err(EngineError::Gpu(format!(
                "weights need {weight_bytes} bytes, the adapter allows {limit} per buffer"
            )));
        }
        let upload = |label, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        // Weights at the storage precision; biases and slopes (aux) stay f32.
        let weights = match precision {
            Precision::F32 => upload("weights", bytemuck::cast_slice(&weights)),
            Precision::F16 => {
                let halves: Vec<u16> = weights
                    .iter()
                    .flatten()
                    .map(|&v| half::f16::from_f32(v).to_bits())
                    .collect();
                upload("weights", bytemuck::cast_slice(&halves))
            }
        };
        let aux = upload("aux", bytemuck::cast_slice(&aux));
        let plain = super::tune::Config {
            fused: false,
            precision,
            threads: fused.threads,
            tile_pixels: fused.tile_pixels,
        };
        let mut engine = Engine {
            gpu: gpu.clone(),
            graph: graph.clone(),
            normalization,
            pipelines: build_pipelines(device, precision, &pipeline_specs(graph, plain)),
            weights,
            aux,
            offsets,
            fusion: false,
            precision,
            fused,
        };
        engine.set_fusion(fusion);
        Ok(engine)
    }

    /// The pipeline a call runs.
    pub(crate) fn pipeline(&self, p: &Pipeline) -> Result<&wgpu::ComputePipeline, EngineError> {
        self.pipelines
            .get(p)
            .ok_or_else(|| EngineError::Gpu(format!("no pipeline for {p:?}")))
    }

    /// Invocations per workgroup of the fused kernels.
    pub fn threads(&self) -> usize {
        self.fused.threads
    }

    /// How the fused kernels are laid out.
    pub fn fused_config(&self) -> FusedConfig {
        self.fused
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// How activations and weights are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// How plans run the network: fused or not, storage precision, fused kernels' layout.
    pub fn config(&self) -> super::tune::Config {
        super::tune::Config {
            fused: self.fusion,
            precision: self.precision,
            threads: self.fused.threads,
            tile_pixels: self.fused.tile_pixels,
        }
    }

    /// Turns bottleneck fusion off (or on again) for plans made from now on: the same
    /// network one op per dispatch, to compare speed and results.
    /// The fused pipelines are compiled the first time fusion is on.
    pub fn set_fusion(&mut self, on: bool) {
        let compiled = self
            .pipelines
            .keys()
            .any(|p| !matches!(p, Pipeline::Entry(..)));
        if on && !compiled {
            let specs = fused_specs(&self.graph, self.fused);
            let fused = build_pipelines(&self.gpu.device, self.precision, &specs);
            self.pipelines.extend(fused);
        }
        self.fusion = on;
    }
}
