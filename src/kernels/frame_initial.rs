//! The preprocessing folded into the initial block: the frame in, the block's output out,
//! the network input never in memory (`shaders/frame_initial.wgsl`, with
//! `resize_common.wgsl` and `initial_common.wgsl`; twins [`super::twin::preprocess`] then
//! [`super::twin::initial`]).

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, u};
use crate::model::graph::Op;

pub const FRAME_INITIAL: KernelSource = KernelSource {
    name: "frame_initial",
    wgsl: net_shader!("resize_common.wgsl", "initial_common.wgsl"; "frame_initial.wgsl"),
};

/// Output pixels per side of a workgroup's tile: its 16x16 invocations, the WGSL's `T`.
pub const FRAME_TILE: usize = 16;

params! {
    FrameInitialParams for [FRAME_INITIAL] {
        src_w: u32, src_h: u32, in_w: u32, in_h: u32,
        out_w: u32, out_h: u32, pool_k: u32, pool_pad: u32,
        w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
        mean: [f32; 4],
        stddev: [f32; 4],
    }
}

bindings! {
    FrameInitialBindings for [FRAME_INITIAL @ "main"] {
        weights: Read,
        aux: Read,
        source: Texture,
        output: ReadWrite,
    }
}

impl FrameInitialParams {
    /// One workgroup per tile.
    pub fn grid(&self) -> [u32; 3] {
        let t = FRAME_TILE as u32;
        [self.out_w.div_ceil(t), self.out_h.div_ceil(t), 1]
    }
}

/// Op `i`, an [`Op::Initial`] reading the network input.
pub fn call(l: &Lowering, i: usize) -> Call {
    let Op::Initial {
        input,
        output,
        pool_kernel,
        pool_pad,
        ..
    } = &l.graph.ops[i]
    else {
        unreachable!("the preprocessing is folded into an initial block")
    };
    let (si, so) = (l.shapes[*input], l.shapes[*output]);
    let off = l.offsets[i];
    let (mean, stddev) = l.mean_std();
    let params = FrameInitialParams {
        src_w: u(l.source.0),
        src_h: u(l.source.1),
        in_w: u(si.w),
        in_h: u(si.h),
        out_w: u(so.w),
        out_h: u(so.h),
        pool_k: u(*pool_kernel),
        pool_pad: u(*pool_pad),
        w_off: off.weights,
        aux_off: off.aux,
        mean,
        stddev,
        ..Default::default()
    };
    let bindings = FrameInitialBindings {
        weights: Resource::Weights,
        aux: Resource::Aux,
        source: Resource::Source,
        output: Resource::Tensor(*output),
    };
    Call::new(
        l.label(i, FRAME_INITIAL.name),
        Pipeline::Entry(FRAME_INITIAL, "main"),
        &params,
        bindings.list(),
        params.grid(),
    )
}
