//! ENet's initial block as its own dispatch, reading the network input tensor
//! (`shaders/initial_block.wgsl`, epilogue in `initial_common.wgsl`; twin
//! [`super::twin::initial`]). Plans use it unfused, and to run the network on a tensor
//! written by a test ([`super::frame_initial`] reads the frame instead).

use super::KernelSource;
use super::twin::{Tensor, conv, prelu};
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};
use crate::model::graph::Op;
use crate::model::graph::{Conv, Shape};

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

// The twin: the same operation in plain Rust, for the tests.

/// ENet's initial block: conv channels first, then the pooled input channels.
#[allow(clippy::too_many_arguments)]
pub fn initial(
    input: &Tensor,
    conv_op: &Conv,
    pool_kernel: usize,
    pool_pad: usize,
    pool_scale: &[f32],
    pool_shift: &[f32],
    pool_slope: &[f32],
    out_shape: Shape,
) -> Tensor {
    let conv_shape = Shape {
        c: conv_op.cout,
        ..out_shape
    };
    let main = conv(input, conv_op, None, conv_shape);
    let mut out = Tensor::zeros(out_shape);
    out.data[..main.data.len()].copy_from_slice(&main.data);
    let s = conv_op.geom.stride[0];
    for c in 0..input.shape.c {
        for oy in 0..out_shape.h {
            for ox in 0..out_shape.w {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..pool_kernel {
                    for kx in 0..pool_kernel {
                        let iy = (oy * s + ky) as isize - pool_pad as isize;
                        let ix = (ox * s + kx) as isize - pool_pad as isize;
                        if iy >= 0
                            && ix >= 0
                            && (iy as usize) < input.shape.h
                            && (ix as usize) < input.shape.w
                        {
                            m = m.max(input.at(c, iy as usize, ix as usize));
                        }
                    }
                }
                let v = prelu(m * pool_scale[c] + pool_shift[c], pool_slope[c]);
                out.data[((conv_op.cout + c) * out_shape.h + oy) * out_shape.w + ox] = v;
            }
        }
    }
    out
}
