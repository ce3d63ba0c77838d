//! Frame -> network input: the source texture resized (bilinear, `resize_common.wgsl`) and
//! normalised, into tensor 0 (`shaders/preprocess.wgsl`; twin [`super::cpu::preprocess`]).
//! Used where the preprocessing is not folded into the initial block ([`super::frame_initial`]).

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};

pub const PREPROCESS: KernelSource = KernelSource {
    name: "preprocess",
    wgsl: net_shader!("resize_common.wgsl"; "preprocess.wgsl"),
};

params! {
    PreParams for [PREPROCESS] {
        src_w: u32, src_h: u32, dst_w: u32, dst_h: u32,
        mean: [f32; 4],
        stddev: [f32; 4],
    }
}

bindings! {
    PreprocessBindings for [PREPROCESS @ "main"] {
        source: Texture,
        output: ReadWrite,
    }
}

impl PreParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.dst_w, self.dst_h, 1)
    }
}

pub fn call(l: &Lowering) -> Call {
    let (mean, stddev) = l.mean_std();
    let params = PreParams {
        src_w: u(l.source.0),
        src_h: u(l.source.1),
        dst_w: u(l.net.0),
        dst_h: u(l.net.1),
        mean,
        stddev,
    };
    let bindings = PreprocessBindings {
        source: Resource::Source,
        output: Resource::Tensor(0),
    };
    Call::new(
        "preprocess".into(),
        Pipeline::Entry(PREPROCESS, "main"),
        &params,
        bindings.list(),
        params.grid(),
    )
}
