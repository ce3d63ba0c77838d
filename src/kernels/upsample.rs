//! An upsampling block in one dispatch (`shaders/upsample.wgsl`; twins
//! [`super::twin::conv`] and [`super::twin::unpool`]): the main branch (1x1 convolution,
//! max-unpool with the encoder's indices) and the other (1x1 projection, transposed
//! convolution of stride 2, 1x1 expansion with the unpooled main branch as residual), an 8x8
//! output tile per workgroup. Which ops form a block is decided in `runtime::fuse`.

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, conv_groups, u};
use crate::model::graph::{Graph, Op};

pub const UPSAMPLE: KernelSource = KernelSource {
    name: "upsample",
    wgsl: net_shader!("fused_common.wgsl"; "upsample.wgsl"),
};

params! {
    UpsampleParams for [UPSAMPLE] {
        h: u32, w: u32, in_h: u32, in_w: u32,
        main_w: u32, main_aux: u32, proj_w: u32, proj_aux: u32,
        tconv_w: u32, tconv_aux: u32, exp_w: u32, exp_aux: u32,
        ch_groups: u32, mid_groups: u32, _pad0: u32, _pad1: u32,
    }
}

bindings! {
    UpsampleBindings for [UPSAMPLE @ "main"] {
        weights: Read,
        aux: Read,
        input: Read,
        indices: Read,
        output: ReadWrite,
    }
}

/// An upsampling block in one dispatch: the main branch (1x1 convolution, max-unpool with
/// the encoder's indices) and the convolutions (1x1 projection, transposed convolution of
/// stride 2, 1x1 expansion with the unpooled main branch as residual).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upsample {
    pub main: usize,
    pub unpool: usize,
    pub proj: usize,
    pub tconv: usize,
    pub expand: usize,
}

/// Output pixels of an upsampling workgroup: 8x8, from 4x4 pixels of the block's input.
pub const UP_TILE: usize = 8;
/// Output pixels of an upsampling workgroup: each gets `threads / UP_PIXELS` invocations.
pub const UP_PIXELS: usize = UP_TILE * UP_TILE;
/// Workgroup memory of `shaders/upsample.wgsl`, in vec4s (16 KiB).
pub const UP_TILE_VEC4: usize = 1024;

/// What an upsampling block's pipeline is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpShape {
    pub cin: usize,
    pub ch: usize,
    pub mid: usize,
    /// The transposed convolution's (square) kernel and padding; its stride is 2.
    pub kernel: usize,
    pub pad: usize,
}

impl UpShape {
    /// Input pixels per side whose projection a tile's transposed convolution reads.
    pub fn low_tile(&self) -> usize {
        (UP_TILE - 1 + self.pad) / 2 + 1
    }

    /// Workgroup memory the tile needs, in vec4s: the projection over [`UpShape::low_tile`]
    /// squared pixels, the main branch over the 4x4 pixels the tile unpools, the transposed
    /// convolution's outputs over the tile.
    pub fn staged_vec4(&self) -> usize {
        let half = UP_TILE / 2;
        let mg = self.mid.div_ceil(4);
        mg * self.low_tile().pow(2) + self.ch.div_ceil(4) * half * half + mg * UP_TILE * UP_TILE
    }

    pub fn grid(&self, w: usize, h: usize) -> [usize; 2] {
        [w.div_ceil(UP_TILE), h.div_ceil(UP_TILE)]
    }

    /// The pipeline-overridable constants of `shaders/upsample.wgsl`, for workgroups of
    /// `threads` invocations.
    pub fn constants(&self, threads: usize) -> Vec<(&'static str, f64)> {
        [
            ("CIN", self.cin),
            ("CH", self.ch),
            ("MID", self.mid),
            ("K", self.kernel),
            ("PAD", self.pad),
            ("LT", self.low_tile()),
            ("THREADS", threads),
        ]
        .into_iter()
        .map(|(k, v)| (k, v as f64))
        .collect()
    }
}

impl Upsample {
    pub fn shape(&self, graph: &Graph) -> UpShape {
        let (Op::Conv { conv: main, .. }, Op::Conv { conv: tconv, .. }) =
            (&graph.ops[self.main], &graph.ops[self.tconv])
        else {
            unreachable!("an upsampling block's main and transposed ops are convolutions")
        };
        UpShape {
            cin: main.cin,
            ch: main.cout,
            mid: tconv.cin,
            kernel: tconv.geom.kernel[0],
            pad: tconv.geom.pad[0],
        }
    }
}

/// Step `up`'s dispatch; an error names what does not fit.
pub fn call(l: &Lowering, up: Upsample) -> Result<Call, String> {
    let graph = l.graph;
    let (
        Op::Conv { input, .. },
        Op::Unpool { indices, .. },
        Op::Conv {
            output,
            residual: Some(res),
            ..
        },
    ) = (
        &graph.ops[up.main],
        &graph.ops[up.unpool],
        &graph.ops[up.expand],
    )
    else {
        unreachable!("fuse::steps fuses upsampling blocks of this form")
    };
    let (si, so, sr) = (l.shapes[*input], l.shapes[*output], l.shapes[res.tensor]);
    if (sr.h, sr.w) != (so.h, so.w) || (so.h, so.w) != (2 * si.h, 2 * si.w) {
        return Err(format!(
            "the upsampling block after {}x{} needs both branches at twice its size (unpooled {}x{})",
            si.w, si.h, sr.w, sr.h
        ));
    }
    let shape = up.shape(graph);
    let [mo, po, to, eo] = [up.main, up.proj, up.tconv, up.expand].map(|i| l.offsets[i]);
    let params = UpsampleParams {
        h: u(so.h),
        w: u(so.w),
        in_h: u(si.h),
        in_w: u(si.w),
        main_w: mo.weights,
        main_aux: mo.aux,
        proj_w: po.weights,
        proj_aux: po.aux,
        tconv_w: to.weights,
        tconv_aux: to.aux,
        exp_w: eo.weights,
        exp_aux: eo.aux,
        ch_groups: u(conv_groups(shape.ch)),
        mid_groups: u(conv_groups(shape.mid)),
        ..Default::default()
    };
    let bindings = UpsampleBindings {
        weights: Resource::Weights,
        aux: Resource::Aux,
        input: Resource::Tensor(*input),
        indices: Resource::Tensor(*indices),
        output: Resource::Tensor(*output),
    };
    let [gx, gy] = shape.grid(so.w, so.h);
    Ok(Call::new(
        l.block_label(up.main, "upsample"),
        Pipeline::Upsample(shape),
        &params,
        bindings.list(),
        [u(gx), u(gy), 1],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_tiles_fit_workgroup_memory() {
        // PyTorch-ENet's 2x2 and the paper's 3x3 transposed convolutions, at the widest
        // block (128 -> 64 channels through 32).
        for (kernel, pad, low) in [(2, 0, 4), (3, 1, 5)] {
            let s = UpShape {
                cin: 128,
                ch: 64,
                mid: 32,
                kernel,
                pad,
            };
            assert_eq!(s.low_tile(), low);
            assert!(s.staged_vec4() <= UP_TILE_VEC4, "{s:?}");
            assert_eq!(s.grid(120, 90), [15, 12]);
        }
    }
}
