//! Everything that lives as long as a model: pipelines and the packed weights. Plans for
//! input sizes are made from it in `plan.rs` (which uses this module; this one does not use
//! that).

use std::collections::{HashMap, HashSet};

use wgpu::util::DeviceExt;

use super::fuse::{self, BlockShape, Step, UpShape};

use super::{EngineError, Gpu};
use crate::kernels::{self, KernelSource, Precision};
use crate::model::Normalization;
use crate::model::graph::{Conv, Graph, Op};

/// Where an op's parameters start, in vec4 units, in the weights and aux buffers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OpOffsets {
    pub weights: u32,
    pub aux: u32,
}

/// The compute pipelines, created once per device.
#[derive(Clone, Debug)]
pub(crate) struct Pipelines {
    pub preprocess: wgpu::ComputePipeline,
    pub initial: wgpu::ComputePipeline,
    pub conv2d: wgpu::ComputePipeline,
    pub conv1x1: wgpu::ComputePipeline,
    pub conv_transpose2d: wgpu::ComputePipeline,
    /// The last transposed convolution with the argmax folded in (its `with_argmax`).
    pub conv_transpose2d_argmax: wgpu::ComputePipeline,
    /// The preprocessing folded into the initial block.
    pub frame_initial: wgpu::ComputePipeline,
    pub maxpool: wgpu::ComputePipeline,
    pub max_unpool: wgpu::ComputePipeline,
    pub argmax: wgpu::ComputePipeline,
}

impl Pipelines {
    fn new(device: &wgpu::Device, precision: Precision) -> Pipelines {
        let make_at = |k: KernelSource, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(k.name),
                source: wgpu::ShaderSource::Wgsl(k.source(precision)),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let make = |k: KernelSource| make_at(k, "main");
        Pipelines {
            preprocess: make(kernels::PREPROCESS),
            initial: make(kernels::INITIAL),
            conv2d: make(kernels::CONV2D),
            conv1x1: make(kernels::CONV1X1),
            conv_transpose2d: make(kernels::CONV_TRANSPOSE2D),
            conv_transpose2d_argmax: make_at(kernels::CONV_TRANSPOSE2D, "with_argmax"),
            frame_initial: make(kernels::FRAME_INITIAL),
            maxpool: make(kernels::MAXPOOL),
            max_unpool: make(kernels::MAX_UNPOOL),
            argmax: make(kernels::ARGMAX),
        }
    }
}

/// A graph on a device: its weights uploaded and its pipelines built. Plans for concrete
/// input sizes come from [`Engine::plan`].
#[derive(Debug)]
pub struct Engine {
    pub(crate) gpu: Gpu,
    pub(crate) graph: Graph,
    pub(crate) normalization: Normalization,
    pub(crate) pipelines: Pipelines,
    pub(crate) weights: wgpu::Buffer,
    pub(crate) aux: wgpu::Buffer,
    pub(crate) offsets: Vec<OpOffsets>,
    /// Whether plans fuse bottlenecks ([`super::fuse`]); on unless turned off to compare.
    pub(crate) fusion: bool,
    /// How activations and weights are stored.
    pub(crate) precision: Precision,
    /// The fused-bottleneck pipelines, one per kind of block in the graph.
    pub(crate) bottlenecks: HashMap<BlockShape, wgpu::ComputePipeline>,
    /// The fused upsampling pipelines, one per kind of upsampling block.
    pub(crate) upsamples: HashMap<UpShape, wgpu::ComputePipeline>,
    /// How the fused kernels are laid out.
    pub(crate) fused: FusedConfig,
}

/// The fused kernels' layout: shapes of their workgroups, so pipeline constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedConfig {
    /// Invocations per workgroup: [`fuse::THREADS`] on GPUs, [`fuse::CPU_THREADS`] on CPU
    /// emulations.
    pub threads: usize,
    /// Output pixels of a bottleneck's tile, at most: one of [`fuse::TILE_PIXELS`].
    pub tile_pixels: usize,
}

impl FusedConfig {
    /// What a device gets unless told otherwise.
    pub fn for_device(gpu: &Gpu) -> FusedConfig {
        let threads = if gpu.info().device_type == wgpu::DeviceType::Cpu {
            fuse::CPU_THREADS
        } else {
            fuse::THREADS
        };
        FusedConfig {
            threads,
            tile_pixels: fuse::PIXELS,
        }
    }

    fn check(&self) -> Result<(), EngineError> {
        let threads = [fuse::CPU_THREADS, fuse::THREADS];
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

/// One pipeline of `kernel` per shape: the shapes are pipeline constants, so the kernel's
/// loops unroll.
fn specialised<S: std::hash::Hash + Eq>(
    device: &wgpu::Device,
    (kernel, precision, threads): (KernelSource, Precision, usize),
    shapes: HashSet<S>,
    constants: impl Fn(&S) -> Vec<(&'static str, f64)>,
) -> HashMap<S, wgpu::ComputePipeline> {
    if shapes.is_empty() {
        return HashMap::new();
    }
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(kernel.name),
        source: wgpu::ShaderSource::Wgsl(kernel.source(precision)),
    });
    shapes
        .into_iter()
        .map(|shape| {
            let mut constants = constants(&shape);
            constants.push(("THREADS", threads as f64));
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    // Every entry of the tile is written before it is read.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            (shape, pipeline)
        })
        .collect()
}

/// The fused pipelines of `shaders/bottleneck.wgsl` and `shaders/upsample.wgsl`, one per
/// kind of block the graph fuses.
#[allow(clippy::type_complexity)]
fn fused_pipelines(
    device: &wgpu::Device,
    graph: &Graph,
    precision: Precision,
    fused: FusedConfig,
) -> (
    HashMap<BlockShape, wgpu::ComputePipeline>,
    HashMap<UpShape, wgpu::ComputePipeline>,
) {
    let threads = fused.threads;
    let steps = fuse::steps_tiled(graph, fused.tile_pixels);
    let blocks: HashSet<BlockShape> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Bottleneck(b) => Some(b.shape(graph)),
            _ => None,
        })
        .collect();
    let ups: HashSet<UpShape> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Upsample(u) => Some(u.shape(graph)),
            _ => None,
        })
        .collect();
    (
        specialised(
            device,
            (kernels::BOTTLENECK, precision, threads),
            blocks,
            BlockShape::constants,
        ),
        specialised(
            device,
            (kernels::UPSAMPLE, precision, threads),
            ups,
            UpShape::constants,
        ),
    )
}

/// Output-channel groups of 4 a convolution is packed into: the conv shaders compute four
/// groups per invocation, so the count is padded to a multiple of 4.
pub(crate) fn conv_groups(cout: usize) -> usize {
    cout.div_ceil(4).next_multiple_of(4)
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
                    let groups = conv_groups(conv.cout);
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
        let (bottlenecks, upsamples) = fused_pipelines(&gpu.device, graph, precision, fused);
        Ok(Engine {
            gpu: gpu.clone(),
            graph: graph.clone(),
            normalization,
            pipelines: Pipelines::new(device, precision),
            weights,
            aux,
            offsets,
            fusion: true,
            precision,
            bottlenecks,
            upsamples,
            fused,
        })
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

    /// Turns bottleneck fusion off (or on again) for plans made from now on: the same
    /// network one op per dispatch, to compare speed and results.
    pub fn set_fusion(&mut self, on: bool) {
        self.fusion = on;
    }
}
