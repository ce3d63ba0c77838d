//! Logits -> class map: one class index per pixel (`shaders/argmax.wgsl`; twin
//! [`super::twin::argmax`]). Used where the argmax is not folded into the last convolution
//! ([`super::conv::with_argmax`]).

use super::KernelSource;
use super::twin::Tensor;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};

pub const ARGMAX: KernelSource = KernelSource {
    name: "argmax",
    wgsl: net_shader!(; "argmax.wgsl"),
};

params! {
    ArgmaxParams for [ARGMAX] {
        channels: u32, h: u32, w: u32, _pad: u32,
    }
}

bindings! {
    ArgmaxBindings for [ARGMAX @ "main"] {
        logits: Read,
        classes: ReadWrite,
    }
}

impl ArgmaxParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.w, self.h, 1)
    }
}

pub fn call(l: &Lowering) -> Call {
    let logits = l.graph.output;
    let s = l.shapes[logits];
    let params = ArgmaxParams {
        channels: u(s.c),
        h: u(s.h),
        w: u(s.w),
        _pad: 0,
    };
    let bindings = ArgmaxBindings {
        logits: Resource::Tensor(logits),
        classes: Resource::Classes,
    };
    Call::new(
        "argmax".into(),
        Pipeline::Entry(ARGMAX, "main"),
        &params,
        bindings.list(),
        params.grid(),
    )
}

// The twin: the same operation in plain Rust, for the tests.

/// Class index of the largest logit per pixel; the first wins on ties.
pub fn argmax(logits: &Tensor) -> Vec<u32> {
    let hw = logits.shape.h * logits.shape.w;
    (0..hw)
        .map(|i| {
            let mut best = 0;
            for c in 1..logits.shape.c {
                if logits.data[c * hw + i] > logits.data[best * hw + i] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}
