//! Lowering: the sizes checked against the device, then the fusion's steps (a pure decision,
//! `runtime::fuse`) turned into calls, one line per kind of step, each made by its kernel's
//! module.

use super::memory::tensor_bytes;
use crate::kernels::{self, Call, Lowering, WORKGROUP};
use crate::model::graph::{DType, Shape};
use crate::runtime::fuse::Step;
use crate::runtime::{Engine, EngineError};

/// The tensors' shapes for a network input of `net` fed from frames of `source`, once every
/// size is known to fit the device; an error names what does not.
pub(super) fn check_sizes(
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

/// Every call of a frame, in order: the preprocessing, the steps, the argmax (the ends
/// where they are not folded into the first and last steps), and, where the preprocessing
/// is folded into the first step, that step reading tensor 0 last (see
/// [`Plan::submit_ops_only`](super::Plan::submit_ops_only)).
pub(super) struct Lowered {
    pub calls: Vec<Call>,
    pub folded_pre: bool,
    pub folded_argmax: bool,
}

pub(super) fn lower(
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
    let l = Lowering {
        graph,
        shapes,
        offsets: &engine.offsets,
        normalization: &engine.normalization,
        source,
        net,
    };
    let folded_pre = matches!(steps.first(), Some(Step::FrameInitial(_)));
    let folded_argmax = matches!(steps.last(), Some(Step::WithArgmax(_)));
    let mut calls = Vec::with_capacity(steps.len() + 3);
    if !folded_pre {
        calls.push(kernels::preprocess::call(&l));
    }
    for step in steps {
        calls.push(match *step {
            Step::Op(i) => op_call(&l, i).map_err(size_err)?,
            Step::FrameInitial(i) => kernels::frame_initial::call(&l, i),
            Step::WithArgmax(i) => kernels::conv::with_argmax(&l, i).map_err(size_err)?,
            Step::Bottleneck(b) => kernels::bottleneck::call(&l, b),
            Step::Upsample(up) => kernels::upsample::call(&l, up).map_err(size_err)?,
        });
    }
    if !folded_argmax {
        calls.push(kernels::argmax::call(&l));
    }
    if let Some(&Step::FrameInitial(i)) = steps.first() {
        calls.push(op_call(&l, i).map_err(size_err)?);
    }
    let max_groups = engine
        .gpu
        .device
        .limits()
        .max_compute_workgroups_per_dimension;
    if let Some(c) = calls
        .iter()
        .find(|c| c.groups.iter().any(|&g| g > max_groups))
    {
        return Err(size_err(format!(
            "{} needs more workgroups than the adapter allows",
            c.label
        )));
    }
    Ok(Lowered {
        calls,
        folded_pre,
        folded_argmax,
    })
}

/// One op as its own dispatch; an error names what does not fit.
fn op_call(l: &Lowering, i: usize) -> Result<Call, String> {
    use crate::model::graph::Op;
    Ok(match &l.graph.ops[i] {
        Op::Initial { .. } => kernels::initial_block::call(l, i),
        Op::Conv { .. } => kernels::conv::call(l, i)?,
        Op::MaxPool { .. } | Op::Unpool { .. } => kernels::pool::call(l, i),
    })
}
