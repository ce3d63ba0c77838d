//! ENet's initial block as its own dispatch, reading the network input tensor
//! (`shaders/initial_block.wgsl`, epilogue in `initial_common.wgsl`; twin
//! [`super::cpu::initial`]). Plans use it unfused, and to run the network on a tensor
//! written by a test ([`super::frame_initial`] reads the frame instead).

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};
use crate::model::graph::Op;

pub const INITIAL: KernelSource = KernelSource {
    name: "initial_block",
    wgsl: net_shader!("initial_common.wgsl"; "initial_block.wgsl"),
};

params! {
    InitialParams for [INITIAL] {
        in_h: u32, in_w: u32, out_h: u32, out_w: u32,
        stride: u32, pad: u32, pool_k: u32, pool_pad: u32,
        w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
    }
}

bindings! {
    InitialBindings for [INITIAL @ "main"] {
        weights: Read,
        aux: Read,
        input: Read,
        output: ReadWrite,
    }
}

impl InitialParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, 1)
    }
}

/// Op `i`, an [`Op::Initial`].
pub fn call(l: &Lowering, i: usize) -> Call {
    let Op::Initial {
        input,
        output,
        conv,
        pool_kernel,
        pool_pad,
        ..
    } = &l.graph.ops[i]
    else {
        unreachable!("op {i} is lowered as an initial block")
    };
    let (si, so) = (l.shapes[*input], l.shapes[*output]);
    let off = l.offsets[i];
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
    let bindings = InitialBindings {
        weights: Resource::Weights,
        aux: Resource::Aux,
        input: Resource::Tensor(*input),
        output: Resource::Tensor(*output),
    };
    Call::new(
        l.label(i, INITIAL.name),
        Pipeline::Entry(INITIAL, "main"),
        &params,
        bindings.list(),
        params.grid(),
    )
}
