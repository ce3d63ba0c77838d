//! 2x2 stride-2 max-pooling with the argmax indices the decoder unpools with, and the
//! unpooling (`shaders/maxpool.wgsl`, `shaders/max_unpool.wgsl`; twins
//! [`super::twin::maxpool`], [`super::twin::unpool`]). They share their parameters; each has
//! its own bindings.

use super::KernelSource;
use super::twin::Tensor;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};
use crate::model::graph::Op;
use crate::model::graph::Shape;

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

// The twin: the same operation in plain Rust, for the tests.

/// 2x2 stride 2 max-pool with PyTorch's indices (`y * W + x` in the input plane); on ties the
/// first maximum in row-major order wins.
pub fn maxpool(input: &Tensor) -> (Tensor, Vec<u32>) {
    let Shape { c, h, w } = input.shape;
    let o = Shape {
        c,
        h: h / 2,
        w: w / 2,
    };
    let mut out = Tensor::zeros(o);
    let mut idx = vec![0u32; o.len()];
    for ch in 0..c {
        for oy in 0..o.h {
            for ox in 0..o.w {
                let mut best = input.at(ch, oy * 2, ox * 2);
                let mut best_i = oy * 2 * w + ox * 2;
                for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                    let (y, x) = (oy * 2 + dy, ox * 2 + dx);
                    let v = input.at(ch, y, x);
                    // As PyTorch: strictly greater replaces, and NaN propagates.
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = y * w + x;
                    }
                }
                let i = (ch * o.h + oy) * o.w + ox;
                out.data[i] = best;
                idx[i] = best_i as u32;
            }
        }
    }
    (out, idx)
}

/// Max-unpool: each value goes back to where its index says; everything else is zero.
pub fn unpool(input: &Tensor, indices: &[u32], out_shape: Shape) -> Tensor {
    let mut out = Tensor::zeros(out_shape);
    let plane = out_shape.h * out_shape.w;
    let in_plane = input.shape.h * input.shape.w;
    for c in 0..input.shape.c {
        for i in 0..in_plane {
            out.data[c * plane + indices[c * in_plane + i] as usize] = input.data[c * in_plane + i];
        }
    }
    out
}
