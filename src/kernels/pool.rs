//! 2x2 stride-2 max-pooling with the argmax indices the decoder unpools with, and the
//! unpooling (`shaders/maxpool.wgsl`, `shaders/max_unpool.wgsl`; twins
//! [`super::cpu::maxpool`], [`super::cpu::unpool`]). They share their parameters; each has
//! its own bindings.

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};
use crate::model::graph::Op;

pub const MAXPOOL: KernelSource = KernelSource {
    name: "maxpool",
    wgsl: net_shader!(; "maxpool.wgsl"),
};
pub const MAX_UNPOOL: KernelSource = KernelSource {
    name: "max_unpool",
    wgsl: net_shader!(; "max_unpool.wgsl"),
};

params! {
    PoolParams for [MAXPOOL, MAX_UNPOOL] {
        channels: u32, in_h: u32, in_w: u32, out_h: u32,
        out_w: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
}

bindings! {
    MaxPoolBindings for [MAXPOOL @ "main"] {
        input: Read,
        output: ReadWrite,
        indices: ReadWrite,
    }
}

bindings! {
    MaxUnpoolBindings for [MAX_UNPOOL @ "main"] {
        input: Read,
        indices: Read,
        output: ReadWrite,
    }
}

impl PoolParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, self.channels)
    }
}

/// Op `i`, an [`Op::MaxPool`] or an [`Op::Unpool`].
pub fn call(l: &Lowering, i: usize) -> Call {
    let op = &l.graph.ops[i];
    let (Op::MaxPool {
        input,
        output,
        indices,
    }
    | Op::Unpool {
        input,
        output,
        indices,
        ..
    }) = op
    else {
        unreachable!("op {i} is lowered as a pool")
    };
    let (si, so) = (l.shapes[*input], l.shapes[*output]);
    let params = PoolParams {
        channels: u(si.c),
        in_h: u(si.h),
        in_w: u(si.w),
        out_h: u(so.h),
        out_w: u(so.w),
        ..Default::default()
    };
    let [input, output, indices] = [*input, *output, *indices].map(Resource::Tensor);
    let (kernel, bindings) = match op {
        Op::MaxPool { .. } => (
            MAXPOOL,
            MaxPoolBindings {
                input,
                output,
                indices,
            }
            .list(),
        ),
        _ => (
            MAX_UNPOOL,
            MaxUnpoolBindings {
                input,
                indices,
                output,
            }
            .list(),
        ),
    };
    Call::new(
        l.label(i, kernel.name),
        Pipeline::Entry(kernel, "main"),
        &params,
        bindings,
        params.grid(),
    )
}
