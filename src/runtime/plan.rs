//! A plan: every buffer, uniform and bind group for one input size, made once, so a frame
//! is only an upload, one encoder full of dispatches and one submission.

use std::num::NonZeroU64;
use std::sync::atomic::Ordering::Relaxed;

use super::engine::Engine;
use super::fuse::Step;
use super::params::{
    ArgmaxParams, BottleneckParams, ConvParams, FrameInitialParams, InitialParams, Params,
    PoolParams, PreParams, UpsampleParams,
};
use super::{EngineError, Gpu};
use crate::kernels::{Precision, WORKGROUP, layout};
use crate::model::graph::{DType, Op, Shape, TensorId};

/// Which timestamps a frame records (needs `TIMESTAMP_QUERY`; ignored without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    #[default]
    Off,
    /// Start and end of the frame's compute pass.
    Frame,
    /// One compute pass per dispatch, each timed: per-kernel cost, at some overhead.
    PerDispatch,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameOptions {
    /// Copy the class map to the readback buffer ([`Plan::read_classes`]).
    pub read_classes: bool,
    pub timing: Timing,
}

/// A dispatch's name: the layer it computes and its kernel (`bottleneck2_1.main conv2d`), or
/// the op's index for graphs without names.
fn op_label(graph: &crate::model::graph::Graph, i: usize, kernel: &str) -> String {
    match graph.name(i) {
        Some(name) => format!("{name} {kernel}"),
        None => format!("{i}:{kernel}"),
    }
}

/// GPU time of one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTiming {
    pub label: String,
    pub ms: f64,
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

struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f32,
    /// A non-blocking readback is in flight (the readback buffer is mapped or mapping).
    pending: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Timestamps {
    /// Room for `count` timestamps (two per timed pass).
    fn new(gpu: &Gpu, count: u32) -> Timestamps {
        let device = &gpu.device;
        let bytes = count as u64 * 8;
        Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            period_ns: gpu.queue.get_timestamp_period(),
            pending: Default::default(),
        }
    }
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

/// A dispatch before its bind group exists: what it runs, with which parameters and
/// bindings, over which grid.
struct Pending {
    label: String,
    pipeline: wgpu::ComputePipeline,
    params: Vec<u8>,
    /// Bindings after the uniform, in binding order.
    resources: Vec<Res>,
    groups: [u32; 3],
}

enum Res {
    Tensor(TensorId),
    Weights,
    Aux,
    Source,
    Classes,
    /// A small writable buffer for a binding the dispatch does not use (a bottleneck's pool
    /// indices when it does not pool): no tensor may be bound writable twice.
    Scratch,
}

/// A fused bottleneck's dispatch (`shaders/bottleneck.wgsl`, see [`super::fuse`]).
fn bottleneck_dispatch(
    engine: &Engine,
    shapes: &[Shape],
    b: super::fuse::Bottleneck,
) -> Result<Pending, EngineError> {
    let graph = &engine.graph;
    let Op::Conv {
        input: main_in,
        output: main_out,
        conv: main,
        ..
    } = &graph.ops[b.main]
    else {
        unreachable!("fuse::steps fuses convolutions")
    };
    let (out, res) = match b.expand {
        Some(e) => match &graph.ops[e] {
            Op::Conv {
                output,
                residual: Some(res),
                ..
            } => (*output, Some(res.tensor)),
            _ => unreachable!("a fused expansion has a residual"),
        },
        None => (*main_out, None),
    };
    // Staged: the projection's input, projected in the kernel; a tail reads the main
    // convolution's input from memory.
    let (input, proj_offsets) = match b.proj {
        Some(p) => match &graph.ops[p] {
            Op::Conv { input, .. } => (*input, engine.offsets[p]),
            _ => unreachable!("a projection is a convolution"),
        },
        None => (*main_in, Default::default()),
    };
    // A fused pool reads the pool's input as the residual and writes the pool's indices.
    let (res, indices) = match b.pool.map(|k| &graph.ops[k]) {
        Some(Op::MaxPool { input, indices, .. }) => (Some(*input), Some(*indices)),
        _ => (res, None),
    };
    let block = b.shape(graph);
    let pipeline = engine
        .bottlenecks
        .get(&block)
        .ok_or_else(|| EngineError::Gpu(format!("no pipeline for the bottleneck {block:?}")))?;
    let s = shapes[out];
    let rs = shapes[res.unwrap_or(input)];
    let g = main.geom;
    let [mo, eo, fo] =
        [Some(b.main), b.expand, b.first].map(|i| i.map(|i| engine.offsets[i]).unwrap_or_default());
    let name = graph.name(b.main).map_or(b.main.to_string(), |n| {
        n.rsplit_once('.').map_or(n, |(a, _)| a).to_string()
    });
    let kind = match (b.proj, b.expand) {
        (Some(_), Some(_)) => "bottleneck",
        (None, _) => "bottleneck_tail",
        (Some(_), None) => "bottleneck_head",
    };
    Ok(Pending {
        label: format!("{name} {kind}"),
        pipeline: pipeline.clone(),
        params: BottleneckParams {
            h: u(s.h),
            w: u(s.w),
            pad_h: u(g.pad[0]),
            pad_w: u(g.pad[1]),
            proj_w: proj_offsets.weights,
            proj_aux: proj_offsets.aux,
            main_w: mo.weights,
            main_aux: mo.aux,
            exp_w: eo.weights,
            exp_aux: eo.aux,
            mid_groups: u(super::engine::conv_groups(block.mid)),
            exp_groups: u(super::engine::conv_groups(block.ch)),
            res_h: u(rs.h),
            res_w: u(rs.w),
            first_w: fo.weights,
            first_aux: fo.aux,
        }
        .bytes(),
        // Each binding the kernel does not read in this form gets a tensor it may read.
        resources: vec![
            Res::Weights,
            Res::Aux,
            Res::Tensor(input),
            Res::Tensor(if b.proj.is_some() { input } else { *main_in }),
            Res::Tensor(res.unwrap_or(input)),
            Res::Tensor(out),
            indices.map_or(Res::Scratch, Res::Tensor),
        ],
        groups: {
            let [gx, gy] = block.grid(s.w, s.h);
            [u(gx), u(gy), 1]
        },
    })
}

/// A fused upsampling block's dispatch (`shaders/upsample.wgsl`).
fn upsample_dispatch(
    engine: &Engine,
    shapes: &[Shape],
    up: super::fuse::Upsample,
) -> Result<Pending, EngineError> {
    let graph = &engine.graph;
    let (
        Op::Conv { input, .. },
        Op::Unpool { indices, .. },
        Op::Conv {
            output,
            residual: Some(res),
            ..
        },
    ) = (
        &graph.ops[up.main],
        &graph.ops[up.unpool],
        &graph.ops[up.expand],
    )
    else {
        unreachable!("fuse::steps fuses upsampling blocks of this form")
    };
    let (si, so, sr) = (shapes[*input], shapes[*output], shapes[res.tensor]);
    if (sr.h, sr.w) != (so.h, so.w) || (so.h, so.w) != (2 * si.h, 2 * si.w) {
        return Err(EngineError::Size {
            w: so.w,
            h: so.h,
            reason: format!(
                "the upsampling block after {}x{} needs both branches at twice its size (unpooled {}x{})",
                si.w, si.h, sr.w, sr.h
            ),
        });
    }
    let shape = up.shape(graph);
    let pipeline = engine
        .upsamples
        .get(&shape)
        .ok_or_else(|| EngineError::Gpu(format!("no pipeline for the upsampling {shape:?}")))?;
    let [mo, po, to, eo] = [up.main, up.proj, up.tconv, up.expand].map(|i| engine.offsets[i]);
    let name = graph.name(up.main).map_or(up.main.to_string(), |n| {
        n.rsplit_once('.').map_or(n, |(a, _)| a).to_string()
    });
    Ok(Pending {
        label: format!("{name} upsample"),
        pipeline: pipeline.clone(),
        params: UpsampleParams {
            h: u(so.h),
            w: u(so.w),
            in_h: u(si.h),
            in_w: u(si.w),
            main_w: mo.weights,
            main_aux: mo.aux,
            proj_w: po.weights,
            proj_aux: po.aux,
            tconv_w: to.weights,
            tconv_aux: to.aux,
            exp_w: eo.weights,
            exp_aux: eo.aux,
            ch_groups: u(super::engine::conv_groups(shape.ch)),
            mid_groups: u(super::engine::conv_groups(shape.mid)),
            ..Default::default()
        }
        .bytes(),
        resources: vec![
            Res::Weights,
            Res::Aux,
            Res::Tensor(*input),
            Res::Tensor(*indices),
            Res::Tensor(*output),
        ],
        groups: {
            let [gx, gy] = shape.grid(so.w, so.h);
            [u(gx), u(gy), 1]
        },
    })
}

fn u(v: usize) -> u32 {
    v as u32
}

/// Frame -> network input (`shaders/preprocess.wgsl`).
fn preprocess_dispatch(engine: &Engine, source: (usize, usize), net: (usize, usize)) -> Pending {
    let n = &engine.normalization;
    let params = PreParams {
        src_w: u(source.0),
        src_h: u(source.1),
        dst_w: u(net.0),
        dst_h: u(net.1),
        mean: [n.mean[0], n.mean[1], n.mean[2], 0.0],
        stddev: [n.std[0], n.std[1], n.std[2], 1.0],
    };
    Pending {
        label: "preprocess".into(),
        pipeline: engine.pipelines.preprocess.clone(),
        params: params.bytes(),
        resources: vec![Res::Source, Res::Tensor(0)],
        groups: params.grid(),
    }
}

/// Frame -> initial block's output, the preprocessing folded in (`shaders/frame_initial.wgsl`).
fn frame_initial_dispatch(
    engine: &Engine,
    shapes: &[Shape],
    i: usize,
    source: (usize, usize),
) -> Pending {
    let graph = &engine.graph;
    let Op::Initial {
        input,
        output,
        pool_kernel,
        pool_pad,
        ..
    } = &graph.ops[i]
    else {
        unreachable!("fuse::steps folds the preprocessing into an initial block")
    };
    let (si, so) = (shapes[*input], shapes[*output]);
    let n = &engine.normalization;
    let off = engine.offsets[i];
    let params = FrameInitialParams {
        src_w: u(source.0),
        src_h: u(source.1),
        in_w: u(si.w),
        in_h: u(si.h),
        out_w: u(so.w),
        out_h: u(so.h),
        pool_k: u(*pool_kernel),
        pool_pad: u(*pool_pad),
        w_off: off.weights,
        aux_off: off.aux,
        mean: [n.mean[0], n.mean[1], n.mean[2], 0.0],
        stddev: [n.std[0], n.std[1], n.std[2], 1.0],
        ..Default::default()
    };
    Pending {
        label: op_label(graph, i, "frame_initial"),
        pipeline: engine.pipelines.frame_initial.clone(),
        params: params.bytes(),
        resources: vec![Res::Weights, Res::Aux, Res::Source, Res::Tensor(*output)],
        groups: params.grid(),
    }
}

/// The last transposed convolution writing the class map too (its `with_argmax` entry).
fn with_argmax_dispatch(engine: &Engine, shapes: &[Shape], i: usize) -> Result<Pending, String> {
    let mut d = op_dispatch(engine, shapes, i)?;
    d.label = op_label(&engine.graph, i, "conv_transpose2d+argmax");
    d.pipeline = engine.pipelines.conv_transpose2d_argmax.clone();
    d.resources.push(Res::Classes);
    Ok(d)
}

/// Logits -> class map (`shaders/argmax.wgsl`).
fn argmax_dispatch(engine: &Engine, shapes: &[Shape]) -> Pending {
    let graph = &engine.graph;
    let so = shapes[graph.output];
    let params = ArgmaxParams {
        channels: u(so.c),
        h: u(so.h),
        w: u(so.w),
        _pad: 0,
    };
    Pending {
        label: "argmax".into(),
        pipeline: engine.pipelines.argmax.clone(),
        params: params.bytes(),
        resources: vec![Res::Tensor(graph.output), Res::Classes],
        groups: params.grid(),
    }
}

/// One op as its own dispatch; an error names what does not fit.
fn op_dispatch(engine: &Engine, shapes: &[Shape], i: usize) -> Result<Pending, String> {
    let graph = &engine.graph;
    let p = &engine.pipelines;
    let op = &graph.ops[i];
    let off = engine.offsets[i];
    Ok(match op {
        Op::Initial {
            input,
            output,
            conv,
            pool_kernel,
            pool_pad,
            ..
        } => {
            let (si, so) = (shapes[*input], shapes[*output]);
            let params = InitialParams {
                in_h: u(si.h),
                in_w: u(si.w),
                out_h: u(so.h),
                out_w: u(so.w),
                stride: u(conv.geom.stride[0]),
                pad: u(conv.geom.pad[0]),
                pool_k: u(*pool_kernel),
                pool_pad: u(*pool_pad),
                w_off: off.weights,
                aux_off: off.aux,
                ..Default::default()
            };
            Pending {
                label: op_label(graph, i, "initial_block"),
                pipeline: p.initial.clone(),
                params: params.bytes(),
                resources: vec![
                    Res::Weights,
                    Res::Aux,
                    Res::Tensor(*input),
                    Res::Tensor(*output),
                ],
                groups: params.grid(),
            }
        }
        Op::Conv {
            input,
            output,
            conv,
            residual,
        } => {
            let (si, so) = (shapes[*input], shapes[*output]);
            let g = conv.geom;
            let (res_t, res_c) = match residual {
                Some(r) => {
                    let rs = shapes[r.tensor];
                    if (rs.h, rs.w) != (so.h, so.w) || rs.c > so.c {
                        return Err(format!(
                            "op {i}: residual {}x{}x{} does not fit output {}x{}x{}",
                            rs.c, rs.h, rs.w, so.c, so.h, so.w
                        ));
                    }
                    (r.tensor, rs.c)
                }
                // Unused when has_res is 0; any readable tensor satisfies the binding.
                None => (*input, 0),
            };
            let kind = op.kind();
            let pipeline = match kind {
                "conv_transpose2d" => &p.conv_transpose2d,
                "conv1x1" => &p.conv1x1,
                _ => &p.conv2d,
            };
            let params = ConvParams {
                in_c: u(si.c),
                in_h: u(si.h),
                in_w: u(si.w),
                out_c: u(so.c),
                out_h: u(so.h),
                out_w: u(so.w),
                k_h: u(g.kernel[0]),
                k_w: u(g.kernel[1]),
                stride_h: u(g.stride[0]),
                stride_w: u(g.stride[1]),
                pad_h: u(g.pad[0]),
                pad_w: u(g.pad[1]),
                dil_h: u(g.dilation[0]),
                dil_w: u(g.dilation[1]),
                w_off: off.weights,
                aux_off: off.aux,
                res_c: u(res_c),
                has_res: residual.is_some() as u32,
                groups: u(super::engine::conv_groups(conv.cout)),
                _pad: 0,
            };
            Pending {
                label: op_label(graph, i, kind),
                pipeline: pipeline.clone(),
                params: params.bytes(),
                resources: vec![
                    Res::Weights,
                    Res::Aux,
                    Res::Tensor(*input),
                    Res::Tensor(res_t),
                    Res::Tensor(*output),
                ],
                groups: params.grid(),
            }
        }
        // Pool and unpool share their parameters and differ in binding order.
        Op::MaxPool {
            input,
            output,
            indices,
        }
        | Op::Unpool {
            input,
            output,
            indices,
            ..
        } => {
            let (si, so) = (shapes[*input], shapes[*output]);
            let (name, pipeline, order) = match op {
                Op::MaxPool { .. } => ("maxpool", &p.maxpool, [*input, *output, *indices]),
                _ => ("max_unpool", &p.max_unpool, [*input, *indices, *output]),
            };
            let params = PoolParams {
                channels: u(si.c),
                in_h: u(si.h),
                in_w: u(si.w),
                out_h: u(so.h),
                out_w: u(so.w),
                ..Default::default()
            };
            Pending {
                label: op_label(graph, i, name),
                pipeline: pipeline.clone(),
                params: params.bytes(),
                resources: order.into_iter().map(Res::Tensor).collect(),
                groups: params.grid(),
            }
        }
    })
}

/// Liveness-based buffer sharing: each tensor a dispatch writes gets a buffer (in bytes, the
/// sizes returned), reused once the tensor's last reader ran; tensors that live only inside
/// fused dispatches get none (`usize::MAX`).
fn assign_buffers(
    graph: &crate::model::graph::Graph,
    shapes: &[Shape],
    steps: &[super::fuse::Step],
    precision: Precision,
) -> (Vec<usize>, Vec<u64>) {
    let last = super::fuse::last_use(graph, steps);
    let written = super::fuse::written(graph, steps);
    let mut sizes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut tensor_buffer = vec![usize::MAX; shapes.len()];
    let mut assign = |t: usize, tensor_buffer: &mut Vec<usize>, free: &mut Vec<usize>| {
        let need = tensor_bytes(graph, t, shapes[t], precision).max(16);
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| sizes[**b] >= need)
            .min_by_key(|(_, b)| sizes[**b])
            .map(|(i, _)| i);
        // None fits: grow the largest free buffer (none exists yet) rather than add one.
        let largest = || {
            free.iter()
                .enumerate()
                .max_by_key(|(_, b)| sizes[**b])
                .map(|(i, _)| i)
        };
        tensor_buffer[t] = match best.or_else(largest) {
            Some(i) => {
                let b = free.swap_remove(i);
                sizes[b] = sizes[b].max(need);
                b
            }
            None => {
                sizes.push(need);
                sizes.len() - 1
            }
        };
    };
    // The tensors whose last reader is each op (a fused dispatch reads its inputs at its last
    // op, which need not take them as inputs itself).
    let mut dies: Vec<Vec<usize>> = vec![Vec::new(); graph.ops.len()];
    for (t, l) in last.iter().enumerate() {
        if let Some(i) = *l
            && t != graph.output
        {
            dies[i].push(t);
        }
    }
    assign(0, &mut tensor_buffer, &mut free);
    for (i, op) in graph.ops.iter().enumerate() {
        for t in op.outputs() {
            if written[t] {
                assign(t, &mut tensor_buffer, &mut free);
            }
        }
        for &t in &dies[i] {
            if tensor_buffer[t] != usize::MAX {
                free.push(tensor_buffer[t]);
            }
        }
    }
    (tensor_buffer, sizes)
}

/// Bytes of tensor `t` of `shape` in memory: activations at the storage precision in groups
/// of 4 channels ([`layout`]), indices as u32 planes; rounded up to 4, as buffer copies and
/// bindings need.
fn tensor_bytes(
    graph: &crate::model::graph::Graph,
    t: TensorId,
    shape: Shape,
    precision: Precision,
) -> u64 {
    let bytes = match graph.tensors[t].dtype {
        DType::F32 => layout::stored_len(shape) * precision.bytes(),
        _ => shape.len() * 4,
    };
    (bytes as u64).next_multiple_of(4)
}

/// The tensors' shapes for a network input of `net` fed from frames of `source`, once every
/// size is known to fit the device; an error names what does not.
fn check_sizes(
    engine: &Engine,
    net: (usize, usize),
    source: (usize, usize),
) -> Result<Vec<Shape>, EngineError> {
    let (w, h) = net;
    let size_err = |reason: String| EngineError::Size { w, h, reason };
    if w == 0 || h == 0 || source.0 == 0 || source.1 == 0 {
        return Err(size_err(format!(
            "sizes must be positive (source frame {}x{})",
            source.0, source.1
        )));
    }
    let gpu = &engine.gpu;
    let device = &gpu.device;
    let limits = device.limits();
    let max_tex = limits.max_texture_dimension_2d as usize;
    if source.0 > max_tex || source.1 > max_tex {
        return Err(size_err(format!(
            "the source frame {}x{} exceeds the adapter's texture limit of {max_tex} pixels per side",
            source.0, source.1
        )));
    }
    let graph = &engine.graph;
    let shapes = graph.shapes(h, w).map_err(|e| size_err(e.to_string()))?;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let precision = engine.precision;
    for (t, s) in shapes.iter().enumerate() {
        let bytes = tensor_bytes(graph, t, *s, precision);
        if bytes > max_binding {
            return Err(size_err(format!(
                "tensor {t} ({}x{}x{}) needs {} MiB, the adapter allows {} MiB per buffer; use a smaller input size",
                s.c,
                s.h,
                s.w,
                bytes >> 20,
                max_binding >> 20
            )));
        }
    }
    let max_groups = limits.max_compute_workgroups_per_dimension as usize;
    if w.div_ceil(WORKGROUP[0] as usize) > max_groups
        || h.div_ceil(WORKGROUP[1] as usize) > max_groups
    {
        return Err(size_err(format!(
            "more workgroups than the adapter allows ({max_groups} per dimension)"
        )));
    }
    Ok(shapes)
}

/// Every dispatch of a frame, in order, before binding: the preprocessing, the steps, the
/// argmax (the ends where they are not folded into the first and last steps), and, where the
/// preprocessing is folded into the first step, that step reading tensor 0 last (see
/// [`Plan::submit_ops_only`]).
struct Lowered {
    pending: Vec<Pending>,
    folded_pre: bool,
    folded_argmax: bool,
}

fn lower(
    engine: &Engine,
    shapes: &[Shape],
    steps: &[Step],
    net: (usize, usize),
    source: (usize, usize),
) -> Result<Lowered, EngineError> {
    let (w, h) = net;
    let size_err = |reason: String| EngineError::Size { w, h, reason };
    let graph = &engine.graph;
    if graph.tensors[graph.output].dtype != DType::F32 {
        return Err(EngineError::Gpu(
            "the graph's output is not an f32 tensor".into(),
        ));
    }
    let folded_pre = matches!(steps.first(), Some(Step::FrameInitial(_)));
    let folded_argmax = matches!(steps.last(), Some(Step::WithArgmax(_)));
    let mut pending = Vec::with_capacity(steps.len() + 3);
    if !folded_pre {
        pending.push(preprocess_dispatch(engine, source, net));
    }
    for step in steps {
        pending.push(match *step {
            Step::Op(i) => op_dispatch(engine, shapes, i).map_err(size_err)?,
            Step::FrameInitial(i) => frame_initial_dispatch(engine, shapes, i, source),
            Step::WithArgmax(i) => with_argmax_dispatch(engine, shapes, i).map_err(size_err)?,
            Step::Bottleneck(b) => bottleneck_dispatch(engine, shapes, b)?,
            Step::Upsample(up) => upsample_dispatch(engine, shapes, up)?,
        });
    }
    if !folded_argmax {
        pending.push(argmax_dispatch(engine, shapes));
    }
    if let Some(&Step::FrameInitial(i)) = steps.first() {
        pending.push(op_dispatch(engine, shapes, i).map_err(size_err)?);
    }
    let max_groups = engine
        .gpu
        .device
        .limits()
        .max_compute_workgroups_per_dimension;
    if let Some(d) = pending
        .iter()
        .find(|d| d.groups.iter().any(|&g| g > max_groups))
    {
        return Err(size_err(format!(
            "{} needs more workgroups than the adapter allows",
            d.label
        )));
    }
    Ok(Lowered {
        pending,
        folded_pre,
        folded_argmax,
    })
}

/// The memory a plan's dispatches bind: the activation buffers (shared by tensors whose
/// lifetimes do not overlap), the source frame, the class map and its readback.
struct Resources {
    buffers: Vec<wgpu::Buffer>,
    source: wgpu::Texture,
    source_view: wgpu::TextureView,
    classes: wgpu::Buffer,
    classes_readback: wgpu::Buffer,
    /// Bound where a dispatch writes nothing ([`Res::Scratch`]).
    scratch: wgpu::Buffer,
}

impl Resources {
    fn new(device: &wgpu::Device, sizes: &[u64], source: (usize, usize), class_bytes: u64) -> Self {
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let buffers = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                buffer(
                    &format!("activations {i}"),
                    size,
                    wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                )
            })
            .collect();
        let source = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("source frame"),
            size: wgpu::Extent3d {
                width: source.0 as u32,
                height: source.1 as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            // RENDER_ATTACHMENT: browsers copy camera frames in with copyExternalImageToTexture.
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        Resources {
            buffers,
            source_view: source.create_view(&Default::default()),
            source,
            classes: buffer(
                "class map",
                class_bytes,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            classes_readback: buffer(
                "class map readback",
                class_bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            scratch: buffer("unused binding", 16, wgpu::BufferUsages::STORAGE),
        }
    }
}

/// The dispatches with their bind groups: every dispatch's parameters in one uniform buffer,
/// each at its own aligned offset, and its tensors in the buffers `tensor_buffer` assigns.
fn bind(
    engine: &Engine,
    pending: Vec<Pending>,
    res: &Resources,
    tensor_buffer: &[usize],
    shapes: &[Shape],
) -> Vec<Dispatch> {
    let device = &engine.gpu.device;
    let graph = &engine.graph;
    let align = device.limits().min_uniform_buffer_offset_alignment as usize;
    let slot = pending
        .iter()
        .map(|d| d.params.len())
        .max()
        .unwrap_or(16)
        .next_multiple_of(align);
    let mut uniform_data = vec![0u8; slot * pending.len()];
    for (i, d) in pending.iter().enumerate() {
        uniform_data[i * slot..i * slot + d.params.len()].copy_from_slice(&d.params);
    }
    let uniforms = {
        use wgpu::util::DeviceExt;
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dispatch parameters"),
            contents: &uniform_data,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    };
    pending
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset: (i * slot) as u64,
                    size: NonZeroU64::new(d.params.len() as u64),
                }),
            }];
            for (b, r) in d.resources.iter().enumerate() {
                let resource = match r {
                    Res::Tensor(t) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &res.buffers[tensor_buffer[*t]],
                        offset: 0,
                        size: NonZeroU64::new(
                            tensor_bytes(graph, *t, shapes[*t], engine.precision).max(4),
                        ),
                    }),
                    Res::Weights => engine.weights.as_entire_binding(),
                    Res::Aux => engine.aux.as_entire_binding(),
                    Res::Classes => res.classes.as_entire_binding(),
                    Res::Scratch => res.scratch.as_entire_binding(),
                    Res::Source => wgpu::BindingResource::TextureView(&res.source_view),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: b as u32 + 1,
                    resource,
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&d.label),
                layout: &d.pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            Dispatch {
                label: d.label,
                pipeline: d.pipeline,
                bind_group,
                groups: d.groups,
            }
        })
        .collect()
}

impl Plan {
    /// Sizes checked, the graph lowered to dispatches (which ops fuse is a pure decision,
    /// [`super::fuse`]), memory assigned and made, everything bound.
    pub(crate) fn new(
        engine: &Engine,
        net: (usize, usize),
        source: (usize, usize),
    ) -> Result<Plan, EngineError> {
        let shapes = check_sizes(engine, net, source)?;
        let gpu = &engine.gpu;
        let graph = &engine.graph;
        let precision = engine.precision;
        let steps = if engine.fusion {
            super::fuse::steps_tiled(graph, engine.fused.tile_pixels)
        } else {
            super::fuse::unfused(graph)
        };
        let Lowered {
            pending,
            folded_pre,
            folded_argmax,
        } = lower(engine, &shapes, &steps, net, source)?;
        let (tensor_buffer, sizes) = assign_buffers(graph, &shapes, &steps, precision);
        let out_shape = shapes[graph.output];
        let class_bytes = (out_shape.w * out_shape.h * 4).max(4) as u64;
        let res = Resources::new(&gpu.device, &sizes, source, class_bytes);
        let mut dispatches = bind(engine, pending, &res, &tensor_buffer, &shapes);
        let tensor_entry = folded_pre.then(|| dispatches.pop()).flatten();
        let timestamps = gpu
            .has_timestamps()
            .then(|| Timestamps::new(gpu, 2 * dispatches.len() as u32));
        let tensor_bytes = (0..shapes.len())
            .map(|t| tensor_bytes(graph, t, shapes[t], precision))
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
        if rgba.len() != sw * sh * 4 {
            return Err(EngineError::ImageBytes {
                w: sw,
                h: sh,
                got: rgba.len(),
                want: sw * sh * 4,
            });
        }
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
            encoder.resolve_query_set(&t.set, 0..queries, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, queries as u64 * 8);
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

    /// GPU times of the last frame submitted with timing on: one entry for
    /// [`Timing::Frame`], one per dispatch for [`Timing::PerDispatch`].
    pub async fn read_timings(&self) -> Result<Vec<StageTiming>, EngineError> {
        let Some(t) = &self.timestamps else {
            return Ok(Vec::new());
        };
        let timing = self.last_timing.get();
        if timing == Timing::Off {
            return Ok(Vec::new());
        }
        let bytes = self.gpu.read_buffer(&t.readback).await?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 * t.period_ns as f64 / 1e6;
        Ok(match timing {
            Timing::Frame => vec![StageTiming {
                label: "frame".into(),
                ms: ms(ticks[0], ticks[1]),
            }],
            _ => self
                .dispatches
                .iter()
                .enumerate()
                .map(|(i, d)| StageTiming {
                    label: d.label.clone(),
                    ms: ms(ticks[2 * i], ticks[2 * i + 1]),
                })
                .collect(),
        })
    }

    /// Starts reading the timings of the frame just submitted without blocking; `done` gets
    /// them once the GPU has finished (the browser's event loop, or the next device poll).
    /// Returns false, recording nothing, while an earlier request is still pending or when
    /// timing was off.
    pub fn request_timings(
        &self,
        done: impl FnOnce(Vec<StageTiming>) + wgpu::WasmNotSend + 'static,
    ) -> bool {
        let Some(t) = &self.timestamps else {
            return false;
        };
        let timing = self.last_timing.get();
        if timing == Timing::Off || t.pending.load(Relaxed) {
            return false;
        }
        t.pending.store(true, Relaxed);
        let buffer = t.readback.clone();
        let pending = t.pending.clone();
        let period = t.period_ns as f64;
        let labels: Vec<String> = match timing {
            Timing::PerDispatch => self.dispatches.iter().map(|d| d.label.clone()).collect(),
            _ => vec!["frame".into()],
        };
        let slice_buffer = buffer.clone();
        slice_buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let mut out = Vec::new();
            if r.is_ok() {
                if let Ok(view) = buffer.get_mapped_range(..) {
                    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
                    for (i, label) in labels.into_iter().enumerate() {
                        let ms =
                            ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6;
                        out.push(StageTiming { label, ms });
                    }
                }
                buffer.unmap();
            }
            pending.store(false, Relaxed);
            done(out);
        });
        true
    }

    /// Whether timings requested with [`Plan::request_timings`] are still on their way; a
    /// frame must not record timestamps meanwhile.
    pub fn timings_pending(&self) -> bool {
        self.timestamps
            .as_ref()
            .is_some_and(|t| t.pending.load(Relaxed))
    }

    /// Test and debugging access: overwrite a tensor (e.g. the network input).
    pub fn write_tensor(&self, t: TensorId, data: &[f32]) {
        assert_eq!(data.len(), self.shapes[t].len(), "tensor {t} length");
        // NaN in the padding channels: a kernel that took them for a channel would show.
        let data = &layout::pack(self.shapes[t], data, f32::NAN);
        let mut bytes: Vec<u8> = match self.precision {
            Precision::F32 => bytemuck::cast_slice(data).to_vec(),
            Precision::F16 => data
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        bytes.resize(self.bytes(t) as usize, 0);
        self.gpu
            .queue
            .write_buffer(&self.buffers[self.tensor_buffer[t]], 0, &bytes);
    }

    /// Test and debugging access: runs the network ops only (no preprocess) on whatever
    /// tensor 0 holds.
    pub fn submit_ops_only(&self) -> wgpu::SubmissionIndex {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // The first dispatch preprocesses the frame, or reads it for the initial block:
            // then `tensor_entry` is that block reading tensor 0. The argmax, where it is a
            // dispatch of its own, is left out.
            if let Some(entry) = &self.tensor_entry {
                run(&mut pass, entry);
            }
            let end = self.dispatches.len() - !self.argmax_folded as usize;
            for d in &self.dispatches[1..end] {
                run(&mut pass, d);
            }
        }
        self.gpu.queue.submit([encoder.finish()])
    }

    /// Test and debugging access: reads a tensor's raw bytes back. Allocates; not for the
    /// frame loop.
    async fn read_tensor_bytes(&self, t: TensorId) -> Result<Vec<u8>, EngineError> {
        if self.tensor_buffer[t] == usize::MAX {
            return Err(EngineError::Gpu(format!(
                "tensor {t} lives only inside a fused dispatch; plan without fusion to read it"
            )));
        }
        let bytes = self.bytes(t);
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.buffers[self.tensor_buffer[t]], 0, &staging, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let mut raw = self.gpu.read_buffer(&staging).await?;
        raw.truncate(bytes as usize);
        Ok(raw)
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

    /// Test and debugging access: an activation tensor's values (as f32 whatever the
    /// storage precision).
    pub async fn read_tensor(&self, t: TensorId) -> Result<Vec<f32>, EngineError> {
        let raw = self.read_tensor_bytes(t).await?;
        let shape = self.shapes[t];
        let n = layout::stored_len(shape);
        let stored: Vec<f32> = match self.precision {
            Precision::F32 => bytemuck::pod_collect_to_vec(&raw[..n * 4]),
            Precision::F16 => raw[..n * 2]
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(layout::unpack(shape, &stored))
    }

    /// Test and debugging access: a u32 tensor's values (max-pool indices).
    pub async fn read_indices(&self, t: TensorId) -> Result<Vec<u32>, EngineError> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.read_tensor_bytes(t).await?,
        ))
    }

    /// The logits tensor's id.
    pub fn output(&self) -> TensorId {
        self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;
    use crate::model::weights::synthetic_graph;
    use crate::runtime::fuse;

    /// Replays the steps in order: no dispatch may write a buffer that holds a tensor some
    /// dispatch (itself included) still reads, or the logits.
    fn check_no_live_tensor_is_overwritten(
        g: &crate::model::graph::Graph,
        steps: &[fuse::Step],
        tensor_buffer: &[usize],
    ) {
        let mut last_read = vec![None; g.tensors.len()];
        for (k, s) in steps.iter().enumerate() {
            for t in s.reads(g) {
                last_read[t] = Some(k);
            }
        }
        let mut holds: std::collections::HashMap<usize, usize> = Default::default();
        holds.insert(tensor_buffer[0], 0);
        for (k, s) in steps.iter().enumerate() {
            for t in s.writes(g) {
                let b = tensor_buffer[t];
                assert_ne!(
                    b,
                    usize::MAX,
                    "step {k} writes tensor {t}, which has no buffer"
                );
                if let Some(&u) = holds.get(&b) {
                    assert!(u != g.output, "step {k} overwrites the logits");
                    assert!(
                        last_read[u].is_none_or(|r| r < k),
                        "step {k} ({s:?}) writes tensor {t} over tensor {u}, read until step {:?}",
                        last_read[u]
                    );
                }
                holds.insert(b, t);
            }
        }
    }

    #[test]
    fn buffers_are_shared_safely_and_fusion_needs_no_more_memory() {
        for layout in [Layout::Paper, Layout::PytorchEnet] {
            let g = synthetic_graph(layout, 12);
            for (w, h) in [(480, 360), (64, 48), (1024, 512)] {
                let shapes = g.shapes(h, w).unwrap();
                let mut total = Vec::new();
                for steps in [fuse::unfused(&g), fuse::steps(&g)] {
                    for precision in [Precision::F32, Precision::F16] {
                        let (tensor_buffer, sizes) = assign_buffers(&g, &shapes, &steps, precision);
                        check_no_live_tensor_is_overwritten(&g, &steps, &tensor_buffer);
                        for (t, &b) in tensor_buffer.iter().enumerate() {
                            if b != usize::MAX {
                                assert!(sizes[b] >= tensor_bytes(&g, t, shapes[t], precision));
                            }
                        }
                        total.push(sizes.iter().sum::<u64>());
                    }
                }
                let [unfused32, unfused16, fused32, fused16] = total[..] else {
                    unreachable!()
                };
                assert!(
                    fused32 <= unfused32,
                    "{layout:?} {w}x{h}: {fused32} > {unfused32}"
                );
                assert!(fused16 <= unfused16);
                assert!(fused16 < fused32);
            }
        }
    }
}
