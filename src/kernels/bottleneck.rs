//! A whole bottleneck in one dispatch (`shaders/bottleneck.wgsl`; twin: the three
//! convolutions of [`super::twin::conv`] one after the other): projection, main convolution
//! and expansion with residual and PReLU, the projection's tile staged in workgroup memory.
//! Which ops form a block is decided in `runtime::fuse`; what a block is, its pipeline's
//! specialisation ([`BlockShape`]) and its dispatch are here.

use super::KernelSource;
use super::unit::{Call, Lowering, Pipeline, Resource, conv_groups, u};
use crate::model::graph::{Graph, Op};

pub const BOTTLENECK: KernelSource = KernelSource {
    name: "bottleneck",
    wgsl: net_shader!("fused_common.wgsl"; "bottleneck.wgsl"),
};

/// Workgroup memory the fused kernel stages the projection in, in vec4s (16 KiB).
pub const TILE_VEC4: usize = 1024;
/// Invocations of a fused kernel's workgroup on a GPU: WebGPU's default limit. Those that
/// share an output pixel split its channels, so a block's serial work per invocation shrinks
/// and more of them hide memory latency.
pub const THREADS: usize = 256;
/// The same on a CPU emulation of a GPU (lavapipe, SwiftShader, WARP), which runs a
/// workgroup's invocations one after the other: more lanes only add their overhead there.
pub const CPU_THREADS: usize = 64;
/// The main convolution's channels are kept in registers: at most this many.
pub const MAX_MID: usize = 32;

params! {
    /// Where the block's ops' weights lie and its sizes; the rest is specialised
    /// ([`BlockShape::constants`]).
    BottleneckParams for [BOTTLENECK] {
        h: u32, w: u32, pad_h: u32, pad_w: u32,
        proj_w: u32, proj_aux: u32, main_w: u32, main_aux: u32,
        exp_w: u32, exp_aux: u32, mid_groups: u32, exp_groups: u32,
        res_h: u32, res_w: u32, first_w: u32, first_aux: u32,
    }
}

bindings! {
    /// Each binding a form of the block does not read gets a tensor it may read; `indices`
    /// (written only when pooling) gets scratch memory otherwise.
    BottleneckBindings for [BOTTLENECK @ "main"] {
        weights: Read,
        aux: Read,
        input: Read,
        mid: Read,
        residual: Read,
        output: ReadWrite,
        indices: ReadWrite,
    }
}

/// One fused dispatch over output tiles (`tile`) whose main convolution's input, with its
/// halo, is staged in workgroup memory: a whole bottleneck (`proj`: the projection computed
/// into that memory), its tail (no `proj`: the main convolution's input loaded from memory),
/// or a projection and main convolution without expansion (the first half of an asymmetric
/// block). A tail whose residual is a max-pool's output computes that pool (`pool`), indices
/// included. An asymmetric block has two main convolutions: `first`, computed over the tile's
/// halo into workgroup memory, then `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    pub proj: Option<usize>,
    pub first: Option<usize>,
    pub main: usize,
    pub expand: Option<usize>,
    pub pool: Option<usize>,
    pub tile: Tile,
}

impl Bottleneck {
    /// The last op the dispatch computes: its output is that op's.
    pub fn last(&self) -> usize {
        self.expand.unwrap_or(self.main)
    }
}

/// A workgroup's output pixels: `size` `[w, h]` of them, `step` apart. A dilated convolution
/// whose contiguous halo would not fit takes pixels a dilation apart: in that tile its taps are
/// neighbours, so its halo is one pixel wide whatever the dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub size: [usize; 2],
    pub step: [usize; 2],
}

/// What a fused bottleneck's pipeline is specialised for (its pipeline constants): one
/// pipeline per kind of block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockShape {
    pub ch: usize,
    pub mid: usize,
    /// Channels of the residual (fewer than `ch` in a downsampling block: zero-padded).
    pub res_c: usize,
    pub kernel: [usize; 2],
    pub dilation: [usize; 2],
    /// The output tile; its main convolution's input is staged with its halo.
    pub tile: Tile,
    /// Whether that input is the projection, computed in the kernel (false: read from
    /// memory).
    pub project: bool,
    /// The projection's input channels and its (square) kernel, equal to its stride: 1, or
    /// 2 for a downsampling block's.
    pub proj_cin: usize,
    pub proj_k: usize,
    /// The kernel of a first main convolution (an asymmetric block's), computed between the
    /// projection and the main convolution.
    pub first_kernel: Option<[usize; 2]>,
    /// Whether the main convolution's output is expanded (false: it is the output).
    pub expand: bool,
    /// Whether the residual is the 2x2 max-pool of the `residual` binding.
    pub pool: bool,
}

impl BlockShape {
    /// The output tile a workgroup computes.
    pub fn tile(&self) -> Tile {
        self.tile
    }

    /// The main convolution's input region, `[w, h]` pixels of the tile's grid: the tile and
    /// its halo.
    pub fn halo(&self) -> [usize; 2] {
        let t = self.tile;
        [
            t.size[0] + (self.kernel[1] - 1) * (self.dilation[1] / t.step[0]),
            t.size[1] + (self.kernel[0] - 1) * (self.dilation[0] / t.step[1]),
        ]
    }

    /// Workgroups over an output of `w` x `h`: per row and column of the tile grid, `step`
    /// interleaved sets.
    pub fn grid(&self, w: usize, h: usize) -> [usize; 2] {
        let t = self.tile();
        [
            t.step[0] * w.div_ceil(t.step[0]).div_ceil(t.size[0]),
            t.step[1] * h.div_ceil(t.step[1]).div_ceil(t.size[1]),
        ]
    }

    /// The pipeline-overridable constants of `shaders/bottleneck.wgsl`, for workgroups of
    /// `threads` invocations (`tests/shaders.rs` holds the names to the WGSL's overrides).
    pub fn constants(&self, threads: usize) -> Vec<(&'static str, f64)> {
        let t = self.tile();
        // The convolution's dilation in tile pixels.
        let td = [self.dilation[0] / t.step[1], self.dilation[1] / t.step[0]];
        let [halo_w, halo_h] = self.halo();
        let [fkh, fkw] = self.first_kernel.unwrap_or([1, 1]);
        [
            ("CH", self.ch),
            ("MID", self.mid),
            ("RES_C", self.res_c),
            ("K_H", self.kernel[0]),
            ("K_W", self.kernel[1]),
            ("DIL_H", self.dilation[0]),
            ("DIL_W", self.dilation[1]),
            ("TILE_W", t.size[0]),
            ("TILE_H", t.size[1]),
            ("STEP_W", t.step[0]),
            ("STEP_H", t.step[1]),
            ("TD_W", td[1]),
            ("TD_H", td[0]),
            ("HALO_W", halo_w),
            ("HALO_H", halo_h),
            ("FIRST", self.first_kernel.is_some() as usize),
            ("F_KH", fkh),
            ("F_KW", fkw),
            ("P_W", halo_w + fkw - 1),
            ("P_H", halo_h + fkh - 1),
            ("PROJECT", self.project as usize),
            ("PROJ_CIN", self.proj_cin),
            ("PROJ_K", self.proj_k),
            ("EXPAND", self.expand as usize),
            ("POOL", self.pool as usize),
            ("THREADS", threads),
        ]
        .into_iter()
        .map(|(k, v)| (k, v as f64))
        .collect()
    }
}

impl Bottleneck {
    /// The kind of block, for its pipeline.
    pub fn shape(&self, graph: &Graph) -> BlockShape {
        let Op::Conv { conv, .. } = &graph.ops[self.main] else {
            unreachable!("a bottleneck's main op is a convolution")
        };
        let (ch, res_c) = match (self.expand, self.proj) {
            (Some(e), _) => {
                let Op::Conv {
                    conv: expand,
                    residual: Some(res),
                    ..
                } = &graph.ops[e]
                else {
                    unreachable!("a bottleneck's expansion has a residual")
                };
                (expand.cout, graph.tensors[res.tensor].channels)
            }
            // Projection and main convolution only: the block's channels are the
            // projection's input.
            (None, Some(p)) => {
                let Op::Conv { conv: proj, .. } = &graph.ops[p] else {
                    unreachable!("a projection is a convolution")
                };
                (proj.cin, 0)
            }
            (None, None) => unreachable!("a fused step has a projection or an expansion"),
        };
        let (proj_cin, proj_k) = match self.proj.map(|p| &graph.ops[p]) {
            Some(Op::Conv { conv: proj, .. }) => (proj.cin, proj.geom.kernel[0]),
            _ => (0, 1),
        };
        BlockShape {
            ch,
            mid: conv.cin,
            res_c,
            kernel: conv.geom.kernel,
            dilation: conv.geom.dilation,
            tile: self.tile,
            project: self.proj.is_some(),
            proj_cin,
            proj_k,
            first_kernel: self.first.map(|f| match &graph.ops[f] {
                Op::Conv { conv, .. } => conv.geom.kernel,
                _ => unreachable!("a first main convolution is a convolution"),
            }),
            expand: self.expand.is_some(),
            pool: self.pool.is_some(),
        }
    }
}

/// Step `b`'s dispatch; its pipeline is the one specialised for [`Bottleneck::shape`].
pub fn call(l: &Lowering, b: Bottleneck) -> Call {
    let graph = l.graph;
    let Op::Conv {
        input: main_in,
        output: main_out,
        conv: main,
        ..
    } = &graph.ops[b.main]
    else {
        unreachable!("a bottleneck's main op is a convolution")
    };
    let (out, res) = match b.expand {
        Some(e) => match &graph.ops[e] {
            Op::Conv {
                output,
                residual: Some(res),
                ..
            } => (*output, Some(res.tensor)),
            _ => unreachable!("a fused expansion has a residual"),
        },
        None => (*main_out, None),
    };
    // Staged: the projection's input, projected in the kernel; a tail reads the main
    // convolution's input from memory.
    let (input, proj) = match b.proj {
        Some(p) => match &graph.ops[p] {
            Op::Conv { input, .. } => (*input, l.offsets[p]),
            _ => unreachable!("a projection is a convolution"),
        },
        None => (*main_in, Default::default()),
    };
    // A fused pool reads the pool's input as the residual and writes the pool's indices.
    let (res, indices) = match b.pool.map(|k| &graph.ops[k]) {
        Some(Op::MaxPool { input, indices, .. }) => (Some(*input), Some(*indices)),
        _ => (res, None),
    };
    let block = b.shape(graph);
    let s = l.shapes[out];
    let rs = l.shapes[res.unwrap_or(input)];
    let g = main.geom;
    let [mo, eo, fo] =
        [Some(b.main), b.expand, b.first].map(|i| i.map(|i| l.offsets[i]).unwrap_or_default());
    let kind = match (b.proj, b.expand) {
        (Some(_), Some(_)) => "bottleneck",
        (None, _) => "bottleneck_tail",
        (Some(_), None) => "bottleneck_head",
    };
    let params = BottleneckParams {
        h: u(s.h),
        w: u(s.w),
        pad_h: u(g.pad[0]),
        pad_w: u(g.pad[1]),
        proj_w: proj.weights,
        proj_aux: proj.aux,
        main_w: mo.weights,
        main_aux: mo.aux,
        exp_w: eo.weights,
        exp_aux: eo.aux,
        mid_groups: u(conv_groups(block.mid)),
        exp_groups: u(conv_groups(block.ch)),
        res_h: u(rs.h),
        res_w: u(rs.w),
        first_w: fo.weights,
        first_aux: fo.aux,
    };
    let bindings = BottleneckBindings {
        weights: Resource::Weights,
        aux: Resource::Aux,
        input: Resource::Tensor(input),
        mid: Resource::Tensor(if b.proj.is_some() { input } else { *main_in }),
        residual: Resource::Tensor(res.unwrap_or(input)),
        output: Resource::Tensor(out),
        indices: indices.map_or(Resource::Scratch, Resource::Tensor),
    };
    let [gx, gy] = block.grid(s.w, s.h);
    Call::new(
        l.block_label(b.main, kind),
        Pipeline::Bottleneck(block),
        &params,
        bindings.list(),
        [u(gx), u(gy), 1],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_pixel_once_per_lane() {
        for (w, h, step, size) in [
            (60, 45, 16, [8, 8]),
            (20, 13, 4, [8, 8]),
            (9, 7, 2, [8, 8]),
            (64, 48, 1, [8, 8]),
            (37, 21, 1, [8, 4]),
            (30, 17, 1, [4, 8]),
        ] {
            let shape = BlockShape {
                ch: 128,
                mid: 32,
                res_c: 128,
                kernel: [3, 3],
                dilation: [step, step],
                tile: Tile {
                    size,
                    step: [step, step],
                },
                project: true,
                proj_cin: 128,
                proj_k: 1,
                first_kernel: None,
                expand: true,
                pool: false,
            };
            let [gx, gy] = shape.grid(w, h);
            let [tw, th] = shape.tile().size;
            let pixels = tw * th;
            for threads in [THREADS, CPU_THREADS] {
                let lanes = threads / pixels;
                // The shader's mapping of workgroup and invocation to output pixel and lane.
                let mut seen = vec![vec![0; lanes]; w * h];
                for wy in 0..gy {
                    for wx in 0..gx {
                        let x0 = wx % step + (wx / step) * tw * step;
                        let y0 = wy % step + (wy / step) * th * step;
                        for t in 0..threads {
                            let (q, lane) = (t % pixels, t / pixels);
                            let (ox, oy) = (x0 + (q % tw) * step, y0 + (q / tw) * step);
                            if ox < w && oy < h {
                                seen[oy * w + ox][lane] += 1;
                            }
                        }
                    }
                }
                assert!(
                    seen.iter().flatten().all(|&n| n == 1),
                    "{w}x{h} step {step} tile {size:?}, {threads} invocations"
                );
            }
        }
    }
}
