//! Logits -> class map: one class index per pixel (`shaders/argmax.wgsl`; twin
//! [`super::cpu::argmax`]). Used where the argmax is not folded into the last convolution
//! ([`super::conv::with_argmax`]).

use super::KernelSource;
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
