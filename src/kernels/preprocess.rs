//! Frame -> network input: the source texture resized (bilinear, `resize_common.wgsl`) and
//! normalised, into tensor 0 (`shaders/preprocess.wgsl`; twin [`super::twin::preprocess`]).
//! Used where the preprocessing is not folded into the initial block ([`super::frame_initial`]).

use super::KernelSource;
use super::twin::Tensor;
use super::unit::{Call, Lowering, Pipeline, Resource, grid_16x4, u};
use crate::model::Normalization;
use crate::model::graph::Shape;

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

// The twin: the same operation in plain Rust, for the tests.

/// Source pixel coordinate and weight for output coordinate `o` when resizing `src` -> `dst`
/// with half-pixel centres (PyTorch `align_corners=False`), clamped at the edges.
pub fn bilinear_tap(o: usize, src: usize, dst: usize) -> (usize, usize, f32) {
    let s = ((o as f32 + 0.5) * (src as f32 / dst as f32) - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(src - 1);
    let i1 = (i0 + 1).min(src - 1);
    (i0, i1, s - i0 as f32)
}

/// RGBA8 pixels (`sw` x `sh`) -> normalised `3 x h x w` input, bilinear when sizes differ.
pub fn preprocess(
    rgba: &[u8],
    sw: usize,
    sh: usize,
    w: usize,
    h: usize,
    norm: &Normalization,
) -> Tensor {
    let mut t = Tensor::zeros(Shape { c: 3, h, w });
    let px = |x: usize, y: usize, c: usize| rgba[(y * sw + x) * 4 + c] as f32 / 255.0;
    for y in 0..h {
        let (y0, y1, fy) = bilinear_tap(y, sh, h);
        for x in 0..w {
            let (x0, x1, fx) = bilinear_tap(x, sw, w);
            for c in 0..3 {
                let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * fx;
                let bottom = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * fx;
                let v = top + (bottom - top) * fy;
                t.data[(c * h + y) * w + x] = (v - norm.mean[c]) / norm.std[c];
            }
        }
    }
    t
}
