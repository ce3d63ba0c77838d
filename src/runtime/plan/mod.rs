//! A plan: every buffer, uniform and bind group for one input size, made once, so a frame
//! is only an upload, one encoder full of dispatches and one submission. Made in four
//! parts by job: [`lower`] (sizes checked, steps to kernel calls), [`memory`] (buffer
//! sharing), [`bind`] (uniforms, bind groups), and this file's assembly and frame API;
//! [`timing`] reads GPU timestamps, and [`debug`] is the test-only access to tensors.

mod bind;
mod debug;
mod lower;
mod memory;
mod timing;

use std::sync::atomic::Ordering::Relaxed;

pub use timing::{StageTiming, Timing};

use super::engine::Engine;
use super::{EngineError, Gpu};
use crate::kernels::Precision;
use crate::model::graph::{Shape, TensorId};
use lower::Lowered;
use memory::Resources;
use timing::Timestamps;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameOptions {
    /// Copy the class map to the readback buffer ([`Plan::read_classes`]).
    pub read_classes: bool,
    pub timing: Timing,
}

struct Dispatch {
    label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

fn run(pass: &mut wgpu::ComputePass, d: &Dispatch) {
    pass.set_pipeline(&d.pipeline);
    pass.set_bind_group(0, &d.bind_group, &[]);
    pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
}

pub struct Plan {
    gpu: Gpu,
    net: (usize, usize),
    source_size: (usize, usize),
    shapes: Vec<Shape>,
    /// Bytes of each tensor in memory.
    tensor_bytes: Vec<u64>,
    precision: Precision,
    /// Buffer index of each tensor; tensors whose lifetimes do not overlap share one.
    tensor_buffer: Vec<usize>,
    buffers: Vec<wgpu::Buffer>,
    source: wgpu::Texture,
    classes: wgpu::Buffer,
    classes_readback: wgpu::Buffer,
    output: TensorId,
    dispatches: Vec<Dispatch>,
    /// Where the first dispatch reads the frame (the preprocessing folded in): the same op
    /// reading tensor 0 instead, for [`Plan::submit_ops_only`].
    tensor_entry: Option<Dispatch>,
    /// Whether the last dispatch writes the class map itself (no argmax dispatch).
    argmax_folded: bool,
    timestamps: Option<Timestamps>,
    last_timing: std::cell::Cell<Timing>,
}

impl Engine {
    /// Buffers and bind groups for a network input of `net` (w, h) fed from source frames of
    /// `source` (w, h).
    pub fn plan(&self, net: (usize, usize), source: (usize, usize)) -> Result<Plan, EngineError> {
        Plan::new(self, net, source)
    }
}

impl Plan {
    /// Sizes checked, the graph lowered to dispatches (which ops fuse is a pure decision,
    /// [`super::fuse`]), memory assigned and made, everything bound.
    pub(crate) fn new(
        engine: &Engine,
        net: (usize, usize),
        source: (usize, usize),
    ) -> Result<Plan, EngineError> {
        let shapes = lower::check_sizes(engine, net, source)?;
        let gpu = &engine.gpu;
        let graph = &engine.graph;
        let precision = engine.precision;
        let steps = if engine.fusion {
            super::fuse::steps_tiled(graph, engine.fused.tile_pixels)
        } else {
            super::fuse::unfused(graph)
        };
        let Lowered {
            calls,
            folded_pre,
            folded_argmax,
        } = lower::lower(engine, &shapes, &steps, net, source)?;
        let (tensor_buffer, sizes) = memory::assign_buffers(graph, &shapes, &steps, precision);
        let out_shape = shapes[graph.output];
        let class_bytes = (out_shape.w * out_shape.h * 4).max(4) as u64;
        let res = Resources::new(&gpu.device, &sizes, source, class_bytes);
        let mut dispatches = bind::bind(engine, calls, &res, &tensor_buffer, &shapes)?;
        let tensor_entry = folded_pre.then(|| dispatches.pop()).flatten();
        let timestamps = gpu
            .has_timestamps()
            .then(|| Timestamps::new(gpu, 2 * dispatches.len() as u32));
        let tensor_bytes = (0..shapes.len())
            .map(|t| memory::tensor_bytes(graph, t, shapes[t], precision))
            .collect();
        let Resources {
            buffers,
            source: source_tex,
            classes,
            classes_readback,
            ..
        } = res;
        Ok(Plan {
            gpu: gpu.clone(),
            net,
            source_size: source,
            shapes,
            tensor_bytes,
            precision,
            tensor_buffer,
            buffers,
            source: source_tex,
            classes,
            classes_readback,
            output: graph.output,
            dispatches,
            tensor_entry,
            argmax_folded: folded_argmax,
            timestamps,
            last_timing: std::cell::Cell::new(Timing::Off),
        })
    }

    /// Network input size (w, h).
    pub fn net_size(&self) -> (usize, usize) {
        self.net
    }

    /// Source frame size (w, h).
    pub fn source_size(&self) -> (usize, usize) {
        self.source_size
    }

    /// Compute dispatches per frame, preprocessing and argmax included.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    pub fn dispatch_labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(|d| d.label.as_str()).collect()
    }

    /// Bytes of GPU memory the activations, class map and readback hold.
    pub fn memory_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size()).sum::<u64>() + 2 * self.classes.size()
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.shapes[t]
    }

    /// The texture frames are written into (RGBA8, [`Plan::source_size`]); the web app
    /// copies camera frames into it directly.
    pub fn source_texture(&self) -> &wgpu::Texture {
        &self.source
    }

    /// The GPU buffer holding tensor `t` (shared with tensors whose lifetimes do not
    /// overlap; [`Plan::output`]'s stays valid after the frame).
    pub fn tensor_buffer(&self, t: TensorId) -> &wgpu::Buffer {
        &self.buffers[self.tensor_buffer[t]]
    }

    /// The class map on the GPU: one u32 class index per pixel, row-major.
    pub fn class_buffer(&self) -> &wgpu::Buffer {
        &self.classes
    }

    pub fn has_timestamps(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Writes an RGBA8 frame of [`Plan::source_size`] into the source texture.
    pub fn upload_rgba(&self, rgba: &[u8]) -> Result<(), EngineError> {
        let (sw, sh) = self.source_size;
        super::check_rgba(rgba, (sw, sh))?;
        self.gpu.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.source,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            rgba,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(sw as u32 * 4),
                rows_per_image: Some(sh as u32),
            },
            wgpu::Extent3d {
                width: sw as u32,
                height: sh as u32,
                depth_or_array_layers: 1,
            },
        );
        Ok(())
    }

    /// Records a whole frame (preprocess, network, argmax) into `encoder`.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, opts: FrameOptions) {
        self.encode_range(encoder, 0..self.dispatches.len(), opts.timing);
        if opts.read_classes {
            self.encode_class_readback(encoder);
        }
    }

    /// Copies the current class map to the readback buffer ([`Plan::read_classes`]).
    pub fn encode_class_readback(&self, encoder: &mut wgpu::CommandEncoder) {
        self.encode_class_readback_from(encoder, &self.classes);
    }

    /// Copies `classes`, a class map of this plan's size (e.g. a smoothed one), to the
    /// readback buffer ([`Plan::read_classes`]).
    pub fn encode_class_readback_from(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        classes: &wgpu::Buffer,
    ) {
        let size = self.classes.size().min(classes.size());
        encoder.copy_buffer_to_buffer(classes, 0, &self.classes_readback, 0, size);
    }

    fn encode_range(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        range: std::ops::Range<usize>,
        timing: Timing,
    ) {
        let ts = self
            .timestamps
            .as_ref()
            .filter(|t| timing != Timing::Off && !t.pending.load(Relaxed));
        self.last_timing
            .set(if ts.is_some() { timing } else { Timing::Off });
        let pass_desc = |first: u32, last: u32| wgpu::ComputePassDescriptor {
            label: Some("enet"),
            timestamp_writes: ts.map(|t| wgpu::ComputePassTimestampWrites {
                query_set: &t.set,
                beginning_of_pass_write_index: Some(first),
                end_of_pass_write_index: Some(last),
            }),
        };
        let queries = match (ts, timing) {
            (Some(_), Timing::PerDispatch) => {
                for (k, i) in range.enumerate() {
                    let mut pass =
                        encoder.begin_compute_pass(&pass_desc(2 * k as u32, 2 * k as u32 + 1));
                    self.dispatch(&mut pass, i);
                }
                2 * self.dispatches.len() as u32
            }
            _ => {
                let mut pass = encoder.begin_compute_pass(&pass_desc(0, 1));
                for i in range {
                    self.dispatch(&mut pass, i);
                }
                2
            }
        };
        if let Some(t) = ts {
            t.encode_readback(encoder, queries);
        }
    }

    fn dispatch(&self, pass: &mut wgpu::ComputePass, i: usize) {
        run(pass, &self.dispatches[i]);
    }

    /// Uploads `rgba`, records the frame and submits it: one submission.
    pub fn submit_frame(
        &self,
        rgba: &[u8],
        opts: FrameOptions,
    ) -> Result<wgpu::SubmissionIndex, EngineError> {
        self.upload_rgba(rgba)?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, opts);
        Ok(self.gpu.queue.submit([encoder.finish()]))
    }

    /// The class map of the last frame submitted with `read_classes`.
    pub async fn read_classes(&self) -> Result<Vec<u8>, EngineError> {
        let bytes = self.gpu.read_buffer(&self.classes_readback).await?;
        Ok(bytes.chunks_exact(4).map(|b| b[0]).collect())
    }

    /// Bytes tensor `t` takes in its buffer.
    pub fn tensor_bytes(&self, t: TensorId) -> u64 {
        self.bytes(t)
    }

    fn bytes(&self, t: TensorId) -> u64 {
        self.tensor_bytes[t]
    }

    /// How activations are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The logits tensor's id.
    pub fn output(&self) -> TensorId {
        self.output
    }
}
