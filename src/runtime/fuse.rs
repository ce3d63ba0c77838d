//! Which ops run fused, decided from the graph alone (no device): the first step of lowering
//! a graph into dispatches, tested without a GPU.
//!
//! A bottleneck (1x1 projection -> main convolution -> 1x1 expansion + residual + PReLU, as
//! three [`Op::Conv`]s) runs as one dispatch of `shaders/bottleneck.wgsl` when the projection
//! of a tile of outputs with its halo fits in WebGPU's default 16 KiB of workgroup memory
//! (regular and dilated blocks; large dilations in tiles of pixels a dilation apart). A
//! downsampling block too: its 2x2 stride-2 projection computed into the tile from the
//! block's input, its max-pool (the residual and the indices the decoder unpools with) in
//! the same dispatch. An asymmetric block is two: its projection staged for its first
//! convolution, then its tail (second convolution, expansion, residual, PReLU). An
//! upsampling block (1x1 main + max-unpool, 1x1 projection -> transposed convolution -> 1x1
//! expansion + residual) is one dispatch of `shaders/upsample.wgsl`.

use crate::model::graph::{Graph, Op};

/// Workgroup memory the fused kernel stages the projection in, in vec4s (16 KiB).
pub const TILE_VEC4: usize = 1024;
/// Invocations of a fused kernel's workgroup on a GPU: WebGPU's default limit. Those that
/// share an output pixel split its channels, so a block's serial work per invocation shrinks
/// and more of them hide memory latency.
pub const THREADS: usize = 256;
/// The same on a CPU emulation of a GPU (lavapipe, SwiftShader, WARP), which runs a
/// workgroup's invocations one after the other: more lanes only add their overhead there.
pub const CPU_THREADS: usize = 64;
/// Output pixels of a fused bottleneck's tile, at most.
pub const PIXELS: usize = 64;
/// The main convolution's channels are kept in registers: at most this many.
pub const MAX_MID: usize = 32;
/// A tile smaller than this leaves most of the workgroup idle: two dispatches then.
pub const MIN_TILE: usize = 32;

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

    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        [
            ("CIN", self.cin),
            ("CH", self.ch),
            ("MID", self.mid),
            ("K", self.kernel),
            ("PAD", self.pad),
            ("LT", self.low_tile()),
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

    /// The pipeline-overridable constants of `shaders/bottleneck.wgsl`.
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
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

/// What the lowering emits, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// One op as its own dispatch.
    Op(usize),
    /// A bottleneck: one dispatch, or (without a tile) the fused part after the projection's
    /// own `Step::Op`.
    Bottleneck(Bottleneck),
    /// An upsampling block: one dispatch.
    Upsample(Upsample),
    /// The initial block reading the frame itself: the preprocessing (resize, normalise)
    /// folded in (`shaders/frame_initial.wgsl`).
    FrameInitial(usize),
    /// The last op with the argmax folded in: it writes the logits and the class map.
    WithArgmax(usize),
}

impl Step {
    /// The graph ops the step computes.
    pub fn ops(&self) -> Vec<usize> {
        match *self {
            Step::Op(i) | Step::FrameInitial(i) | Step::WithArgmax(i) => vec![i],
            Step::Bottleneck(b) => [b.pool, b.proj, b.first, Some(b.main), b.expand]
                .into_iter()
                .flatten()
                .collect(),
            Step::Upsample(u) => vec![u.main, u.unpool, u.proj, u.tconv, u.expand],
        }
    }

    /// The op whose output the step writes (a pool fused into a tail also writes its
    /// indices).
    pub fn last(&self) -> usize {
        match *self {
            Step::Op(i) | Step::FrameInitial(i) | Step::WithArgmax(i) => i,
            Step::Bottleneck(b) => b.last(),
            Step::Upsample(u) => u.expand,
        }
    }

    /// The tensors the step's dispatch reads from memory.
    pub fn reads(&self, graph: &Graph) -> Vec<usize> {
        let produced: Vec<usize> = self
            .ops()
            .iter()
            .flat_map(|&i| graph.ops[i].outputs())
            .collect();
        // (A tail's main convolution reads the output of an op before it.)
        let mut reads: Vec<usize> = self
            .ops()
            .iter()
            .flat_map(|&i| graph.ops[i].inputs())
            .filter(|t| !produced.contains(t))
            .collect();
        reads.sort_unstable();
        reads.dedup();
        reads
    }

    /// The tensors the step's dispatch writes: its last op's output, and a fused pool's
    /// indices.
    pub fn writes(&self, graph: &Graph) -> Vec<usize> {
        let mut w = graph.ops[self.last()].outputs();
        if let Step::Bottleneck(Bottleneck { pool: Some(p), .. }) = *self
            && let Op::MaxPool { indices, .. } = graph.ops[p]
        {
            w.push(indices);
        }
        w
    }
}

/// The largest tile (at most [`PIXELS`] pixels, at least [`MIN_TILE`]) whose halo'd
/// projection of `mid` channels fits in [`TILE_VEC4`]: contiguous pixels where that fits,
/// otherwise pixels a dilation apart.
fn staged_tile(mid: usize, kernel: [usize; 2], dilation: [usize; 2]) -> Option<Tile> {
    let groups = mid.div_ceil(4);
    let sizes = [[8, 8], [16, 4], [8, 4], [4, 8]];
    let fits = |t: &[usize; 2], d: [usize; 2]| {
        let hw = t[0] + (kernel[1] - 1) * d[1];
        let hh = t[1] + (kernel[0] - 1) * d[0];
        t[0] * t[1] >= MIN_TILE && groups * hw * hh <= TILE_VEC4
    };
    let contiguous = sizes
        .iter()
        .find(|t| fits(t, dilation))
        .map(|&size| Tile { size, step: [1, 1] });
    contiguous.or_else(|| {
        sizes.iter().find(|t| fits(t, [1, 1])).map(|&size| Tile {
            size,
            step: [dilation[1], dilation[0]],
        })
    })
}

/// A stride-1 convolution whose output has its input's size.
fn same(conv: &crate::model::graph::Conv) -> bool {
    let g = conv.geom;
    g.stride == [1, 1]
        && !g.transposed
        && g.pad[0] * 2 == (g.kernel[0] - 1) * g.dilation[0]
        && g.pad[1] * 2 == (g.kernel[1] - 1) * g.dilation[1]
}

/// Ops `i` and `i + 1` as a bottleneck's tail, if they are one: a "same" convolution of at
/// most [`MAX_MID`] channels in and out, then a 1x1 expansion of its output with a residual
/// (of at most as many channels), the convolution's output read by nothing else, its input
/// tile within workgroup memory.
fn tail_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Bottleneck> {
    let (
        Op::Conv {
            output: pb,
            conv: main,
            residual: None,
            ..
        },
        op @ Op::Conv {
            input: ic,
            conv: expand,
            residual: Some(res),
            ..
        },
    ) = (graph.ops.get(i)?, graph.ops.get(i + 1)?)
    else {
        return None;
    };
    let fits = main.cout == main.cin
        && main.cout <= MAX_MID
        && expand.cin == main.cout
        && graph.tensors[res.tensor].channels <= expand.cout;
    let tile = staged_tile(main.cout, main.geom.kernel, main.geom.dilation)?;
    (same(main) && fits && op.kind() == "conv1x1" && ic == pb && readers[*pb] == 1).then_some(
        Bottleneck {
            proj: None,
            first: None,
            main: i,
            expand: Some(i + 1),
            pool: None,
            tile,
        },
    )
}

/// Ops `i`, `i + 1`, `i + 2` as a whole bottleneck whose projection fits a staged tile, if
/// they are one: a 1x1 projection, then a tail whose residual is the block's input.
fn bottleneck_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Bottleneck> {
    let op @ Op::Conv {
        input: x,
        output: pa,
        conv: proj,
        residual: None,
    } = graph.ops.get(i)?
    else {
        return None;
    };
    let tail = tail_at(graph, i + 1, readers)?;
    let (
        Op::Conv {
            input: ib,
            conv: main,
            ..
        },
        Op::Conv {
            residual: Some(res),
            conv: expand,
            ..
        },
    ) = (&graph.ops[i + 1], &graph.ops[i + 2])
    else {
        return None;
    };
    let block = op.kind() == "conv1x1"
        && ib == pa
        && readers[*pa] == 1
        && proj.cout == main.cin
        && expand.cout == proj.cin
        && res.tensor == *x;
    let tile = staged_tile(main.cout, main.geom.kernel, main.geom.dilation)?;
    block.then_some(Bottleneck {
        proj: Some(i),
        tile,
        ..tail
    })
}

/// The largest contiguous tile (at least [`MIN_TILE`] pixels) for two "same" convolutions of
/// `mid` channels one after the other (an asymmetric block's), both staged: the first's input
/// (the projection) over the tile with both halos, then its output over the tile with the
/// second's halo, each within [`TILE_VEC4`].
fn two_conv_tile(mid: usize, first: [usize; 2], second: [usize; 2]) -> Option<Tile> {
    let groups = mid.div_ceil(4);
    [[8, 8], [16, 4], [8, 4], [4, 8]]
        .into_iter()
        .find(|t| {
            let (hw, hh) = (t[0] + second[1] - 1, t[1] + second[0] - 1);
            let (pw, ph) = (hw + first[1] - 1, hh + first[0] - 1);
            t[0] * t[1] >= MIN_TILE && groups * pw * ph <= TILE_VEC4
        })
        .map(|size| Tile { size, step: [1, 1] })
}

/// Ops `i` to `i + 3` as a whole asymmetric block, if they are one: a 1x1 projection, a
/// "same" convolution of dilation 1 (the first), then a tail of the same kind whose residual
/// is the block's input, the intermediates read once, the tile within workgroup memory.
fn asymmetric_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Bottleneck> {
    let tail = tail_at(graph, i + 2, readers)?;
    let (
        op @ Op::Conv {
            input: x,
            output: pa,
            conv: proj,
            residual: None,
        },
        Op::Conv {
            input: ib,
            output: pb,
            conv: first,
            residual: None,
        },
        Op::Conv {
            input: ic,
            conv: main,
            ..
        },
        Op::Conv {
            residual: Some(res),
            conv: expand,
            ..
        },
    ) = (
        &graph.ops[i],
        &graph.ops[i + 1],
        &graph.ops[i + 2],
        &graph.ops[i + 3],
    )
    else {
        return None;
    };
    let block = op.kind() == "conv1x1"
        && ib == pa
        && ic == pb
        && readers[*pa] == 1
        && readers[*pb] == 1
        && same(first)
        && first.geom.dilation == [1, 1]
        && main.geom.dilation == [1, 1]
        && proj.cout == first.cin
        && first.cout == first.cin
        && first.cout == main.cin
        && expand.cout == proj.cin
        && res.tensor == *x;
    let tile = two_conv_tile(main.cout, first.geom.kernel, main.geom.kernel)?;
    block.then_some(Bottleneck {
        proj: Some(i),
        first: Some(i + 1),
        tile,
        ..tail
    })
}

/// Ops `i` and `i + 1` as a staged projection and main convolution, if they are: a 1x1
/// projection read by nothing else, then a "same" convolution of at most [`MAX_MID`]
/// channels that does not begin a tail (the first half of an asymmetric block).
fn staged_pair_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Bottleneck> {
    let (
        op @ Op::Conv {
            output: pa,
            conv: proj,
            residual: None,
            ..
        },
        Op::Conv {
            input: ib,
            conv: main,
            residual: None,
            ..
        },
    ) = (graph.ops.get(i)?, graph.ops.get(i + 1)?)
    else {
        return None;
    };
    let pair = op.kind() == "conv1x1"
        && ib == pa
        && readers[*pa] == 1
        && same(main)
        && main.cin == proj.cout
        && main.cout == main.cin
        && main.cout <= MAX_MID
        && tail_at(graph, i + 1, readers).is_none();
    let tile = staged_tile(main.cout, main.geom.kernel, main.geom.dilation)?;
    pair.then_some(Bottleneck {
        proj: Some(i),
        first: None,
        main: i + 1,
        expand: None,
        pool: None,
        tile,
    })
}

/// Ops `i` to `i + 4` as an upsampling block, if they are one: a 1x1 main convolution
/// unpooled, a 1x1 projection of the same input, a transposed convolution of stride 2 (2x2,
/// or 3x3 with padding 1) and a 1x1 expansion whose residual is the unpooled main branch;
/// every intermediate read once, the staged tile within [`UP_TILE_VEC4`].
fn upsample_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Upsample> {
    let ops = graph.ops.get(i..i + 5)?;
    let [
        m @ Op::Conv {
            input: x,
            output: a,
            conv: main,
            residual: None,
        },
        Op::Unpool {
            input: ua,
            output: b,
            ..
        },
        pr @ Op::Conv {
            input: px,
            output: c,
            conv: proj,
            residual: None,
        },
        Op::Conv {
            input: tc,
            output: d,
            conv: tconv,
            residual: None,
        },
        e @ Op::Conv {
            input: ed,
            conv: expand,
            residual: Some(res),
            ..
        },
    ] = ops
    else {
        return None;
    };
    let g = tconv.geom;
    let geometry = g.transposed
        && g.stride == [2, 2]
        && g.dilation == [1, 1]
        && g.kernel[0] == g.kernel[1]
        && g.pad[0] == g.pad[1]
        && matches!((g.kernel[0], g.pad[0]), (2, 0) | (3, 1));
    let wiring = m.kind() == "conv1x1"
        && pr.kind() == "conv1x1"
        && e.kind() == "conv1x1"
        && ua == a
        && px == x
        && tc == c
        && ed == d
        && res.tensor == *b
        && [*a, *b, *c, *d].iter().all(|&t| readers[t] == 1);
    let channels = proj.cout == tconv.cin
        && tconv.cout == tconv.cin
        && tconv.cin <= MAX_MID
        && tconv.cin % 4 == 0
        && expand.cin == tconv.cout
        && expand.cout == main.cout;
    let up = Upsample {
        main: i,
        unpool: i + 1,
        proj: i + 2,
        tconv: i + 3,
        expand: i + 4,
    };
    (geometry && wiring && channels && up.shape(graph).staged_vec4() <= UP_TILE_VEC4).then_some(up)
}

/// The graph's ops as the steps the lowering emits, fused bottlenecks in tiles of up to
/// [`PIXELS`] output pixels.
pub fn steps(graph: &Graph) -> Vec<Step> {
    steps_tiled(graph, PIXELS)
}

/// As [`steps`], fused bottlenecks in tiles of at most `max_pixels` output pixels ([`PIXELS`]
/// or [`MIN_TILE`]): smaller tiles give a small frame more workgroups, for a GPU with more
/// cores than a 64-pixel tiling keeps busy, at the cost of more halo per pixel.
pub fn steps_tiled(graph: &Graph, max_pixels: usize) -> Vec<Step> {
    let mut out = fused_steps(graph);
    cap_tiles(&mut out, max_pixels);
    out
}

/// Tile sizes the fused kernels take (output pixels at most): every one divides both
/// workgroup sizes, and each fused block has a tile of at least the smaller.
pub const TILE_PIXELS: [usize; 2] = [MIN_TILE, PIXELS];

/// Every bottleneck's tile cut to at most `max_pixels` pixels, its longer side halved first
/// (8x8 -> 8x4, 16x4 -> 8x4): a tile within a larger one's halo fits wherever that did.
fn cap_tiles(steps: &mut [Step], max_pixels: usize) {
    let max_pixels = max_pixels.max(MIN_TILE);
    for s in steps {
        if let Step::Bottleneck(b) = s {
            let size = &mut b.tile.size;
            while size[0] * size[1] > max_pixels {
                let longer = if size[0] > size[1] { 0 } else { 1 };
                size[longer] /= 2;
            }
        }
    }
}

fn fused_steps(graph: &Graph) -> Vec<Step> {
    let mut readers = vec![0usize; graph.tensors.len()];
    for op in &graph.ops {
        for t in op.inputs() {
            readers[t] += 1;
        }
    }
    readers[graph.output] += 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < graph.ops.len() {
        if let Some(u) = upsample_at(graph, i, &readers) {
            out.push(Step::Upsample(u));
            i += 5;
        } else if let Some(b) = bottleneck_at(graph, i, &readers) {
            out.push(Step::Bottleneck(b));
            i += 3;
        } else if let Some(b) = asymmetric_at(graph, i, &readers) {
            out.push(Step::Bottleneck(b));
            i += 4;
        } else if let Some(b) = staged_pair_at(graph, i, &readers) {
            out.push(Step::Bottleneck(b));
            i += 2;
        } else if let Some(t) = tail_at(graph, i, &readers) {
            out.push(Step::Bottleneck(t));
            i += 2;
        } else {
            out.push(Step::Op(i));
            i += 1;
        }
    }
    fold_pools(graph, &mut out, &readers);
    fold_strided_projections(graph, &mut out, &readers);
    fold_ends(graph, &mut out);
    out
}

/// The preprocessing into the initial block, when the network starts with one whose input
/// tile fits the fused kernel (3x3 stride 2 padding 1, a pool window inside that); the
/// argmax into the last op, when it is a transposed convolution of at most 16 classes (one
/// invocation computes all of a pixel's logits).
fn fold_ends(graph: &Graph, steps: &mut [Step]) {
    if let Some(s) = steps.first_mut()
        && let Step::Op(i) = *s
        && let Op::Initial {
            input: 0,
            conv,
            pool_kernel,
            pool_pad,
            ..
        } = &graph.ops[i]
        && conv.geom.stride == [2, 2]
        && conv.geom.pad == [1, 1]
        && conv.geom.kernel == [3, 3]
        && *pool_pad <= 1
        && *pool_kernel <= 2 + pool_pad
    {
        *s = Step::FrameInitial(i);
    }
    if let Some(s) = steps.last_mut()
        && let Step::Op(i) = *s
        && let Op::Conv { output, conv, .. } = &graph.ops[i]
        && *output == graph.output
        && conv.geom.transposed
        && conv.cout <= ARGMAX_CLASSES
    {
        *s = Step::WithArgmax(i);
    }
}

/// Classes a transposed convolution computes its argmax of: one invocation's channels.
pub const ARGMAX_CLASSES: usize = 16;

/// Frame pixels per side of the fused initial block's output tile (16x16 invocations).
pub const FRAME_TILE: usize = 16;

/// A tail whose residual is a 2x2 max-pool's output read by nothing else computes that pool
/// itself (the pool's own step goes): the residual from the pool's input, the indices
/// written beside the block's output.
fn fold_pools(graph: &Graph, steps: &mut Vec<Step>, readers: &[usize]) {
    let mut folded = Vec::new();
    for s in steps.iter_mut() {
        let Step::Bottleneck(b) = s else { continue };
        let Some(e) = b.expand else { continue };
        let Op::Conv {
            residual: Some(res),
            ..
        } = &graph.ops[e]
        else {
            continue;
        };
        let pool = graph
            .ops
            .iter()
            .position(|op| matches!(op, Op::MaxPool { output, .. } if *output == res.tensor));
        if let Some(k) = pool
            && b.proj.is_none()
            && readers[res.tensor] == 1
        {
            b.pool = Some(k);
            folded.push(k);
        }
    }
    steps.retain(|s| !matches!(s, Step::Op(k) if folded.contains(k)));
}

/// A downsampling block's 2x2 stride-2 projection into its tail, once that pools: the tail
/// then computes its staged tile from the block's input itself (the pool's input too).
fn fold_strided_projections(graph: &Graph, steps: &mut Vec<Step>, readers: &[usize]) {
    let mut k = 1;
    while k < steps.len() {
        if let (Step::Op(j), Step::Bottleneck(b)) = (steps[k - 1], steps[k])
            && b.proj.is_none()
            && let Some(pool) = b.pool
            && let Op::MaxPool { input: x, .. } = &graph.ops[pool]
            && let Op::Conv {
                input,
                output,
                conv,
                residual: None,
            } = &graph.ops[j]
            && let Op::Conv { input: mi, .. } = &graph.ops[b.main]
            && input == x
            && output == mi
            && readers[*output] == 1
            && conv.geom == crate::model::graph::ConvGeom::new(2, 2).stride(2)
        {
            steps[k] = Step::Bottleneck(Bottleneck { proj: Some(j), ..b });
            steps.remove(k - 1);
        } else {
            k += 1;
        }
    }
}

/// Every op as its own dispatch (fusion off).
pub fn unfused(graph: &Graph) -> Vec<Step> {
    (0..graph.ops.len()).map(Step::Op).collect()
}

/// Dispatches per frame: the steps, and the preprocessing and the argmax where they are not
/// folded into one.
pub fn dispatch_count(steps: &[Step]) -> usize {
    let pre = !steps.iter().any(|s| matches!(s, Step::FrameInitial(_)));
    let argmax = !steps.iter().any(|s| matches!(s, Step::WithArgmax(_)));
    steps.len() + pre as usize + argmax as usize
}

/// The op after which each tensor is no longer read, with fusion taken into account: a
/// fused dispatch reads its inputs when it computes its last op, so they live until then
/// (their buffers must not be the fused dispatch's output).
pub fn last_use(graph: &Graph, steps: &[Step]) -> Vec<Option<usize>> {
    let mut last = graph.last_use();
    for s in steps {
        for t in s.reads(graph) {
            last[t] = last[t].max(Some(s.last()));
        }
    }
    last
}

/// Which tensors a dispatch writes (the rest live only inside fused dispatches and need no
/// memory): the input, and what each step writes.
pub fn written(graph: &Graph, steps: &[Step]) -> Vec<bool> {
    let mut w = vec![false; graph.tensors.len()];
    w[0] = true;
    for s in steps {
        for t in s.writes(graph) {
            w[t] = true;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;
    use crate::model::weights::synthetic_graph;

    #[test]
    fn enet_bottlenecks_fuse() {
        for layout in [Layout::Paper, Layout::PytorchEnet] {
            let g = synthetic_graph(layout, 12);
            let steps = steps(&g);
            let fused: Vec<&Bottleneck> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Bottleneck(b) => Some(b),
                    _ => None,
                })
                .collect();
            let name = |b: &Bottleneck| g.name(b.main).unwrap().to_string();
            let names = |keep: &dyn Fn(&Bottleneck) -> bool| -> Vec<String> {
                fused.iter().filter(|b| keep(b)).map(|b| name(b)).collect()
            };
            let one = names(&|b| b.proj.is_some() && b.expand.is_some());
            let pairs = names(&|b| b.expand.is_none());
            let tails = names(&|b| b.proj.is_none());
            let pooled = names(&|b| b.pool.is_some());
            // Every block in one dispatch: regular and dilated ones; downsampling ones (the
            // tile projected by the strided convolution, the pool in the residual);
            // asymmetric ones (both convolutions staged in turn).
            assert_eq!(one.len(), 19 + 2 + 4, "{layout:?}: {one:?}");
            assert!(pairs.is_empty(), "{layout:?}: {pairs:?}");
            assert!(tails.is_empty(), "{layout:?}: {tails:?}");
            for s in ["2", "3"] {
                for b in ["1", "2", "4", "5", "6", "8"] {
                    assert!(one.contains(&format!("bottleneck{s}_{b}.conv")), "{one:?}");
                }
                for b in ["3", "7"] {
                    let main = format!("bottleneck{s}_{b}.conv2");
                    let block = fused.iter().find(|b| name(b) == main).expect("asymmetric");
                    let first = block.first.map(|f| g.name(f).unwrap());
                    assert_eq!(first, Some(format!("bottleneck{s}_{b}.conv1").as_str()));
                    assert!(block.tile.size[0] * block.tile.size[1] >= MIN_TILE);
                }
            }
            assert_eq!(pooled, ["bottleneck1_0.conv", "bottleneck2_0.conv"]);
            for b in fused.iter().filter(|b| b.pool.is_some()) {
                assert_eq!(b.shape(&g).proj_k, 2, "{b:?}");
            }
            assert!(one.contains(&"bottleneck1_1.conv".to_string()));
            assert!(one.contains(&"bottleneck5_1.conv".to_string()));
            // Both upsampling blocks in one dispatch each.
            let ups: Vec<&str> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Upsample(u) => g.name(u.tconv),
                    _ => None,
                })
                .collect();
            assert_eq!(ups, ["bottleneck4_0.tconv", "bottleneck5_0.tconv"]);
            // Nothing is left on its own: the preprocessing runs in the initial block, the
            // argmax in the final transposed convolution.
            let alone: Vec<&str> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Op(i) => g.name(*i),
                    _ => None,
                })
                .collect();
            assert!(alone.is_empty(), "{alone:?}");
            assert_eq!(g.name(steps[0].last()), Some("initial"));
            assert!(matches!(steps[0], Step::FrameInitial(_)));
            let end = *steps.last().unwrap();
            assert!(matches!(end, Step::WithArgmax(_)));
            assert_eq!(g.name(end.last()), Some("fullconv"));
            let ops = g.ops.len();
            // 19 bottlenecks of 3 ops, 2 downsampling and 4 asymmetric blocks of 4, 2
            // upsampling blocks of 5: all in one dispatch each; no dispatch of their own for
            // the preprocessing and the argmax.
            assert_eq!(
                dispatch_count(&steps),
                ops - 2 * 19 - 3 * 2 - 3 * 4 - 4 * 2,
                "{layout:?}"
            );
            assert_eq!(dispatch_count(&steps), 29);
            assert_eq!(dispatch_count(&unfused(&g)), 95);
            // Every op is emitted exactly once.
            let mut seen = vec![0; ops];
            for s in &steps {
                for i in s.ops() {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
            // Only what a dispatch writes gets memory; a fused dispatch's inputs outlive it.
            let written = written(&g, &steps);
            let last = last_use(&g, &steps);
            for s in &steps {
                for t in s.reads(&g) {
                    assert!(written[t], "{s:?} reads tensor {t}, which nothing writes");
                    assert!(last[t] >= Some(s.last()));
                }
            }
            let internal = written.iter().filter(|w| !**w).count();
            // Inside each: 2 per bottleneck, 3 per downsampling block (the pooled input, the
            // projection, the main convolution) and per asymmetric block, 4 per upsampling
            // block.
            assert_eq!(internal, 2 * 19 + 3 * 2 + 3 * 4 + 4 * 2, "{layout:?}");
        }
    }

    #[test]
    fn smaller_tiles_change_only_the_tiles() {
        for layout in [Layout::Paper, Layout::PytorchEnet] {
            let g = synthetic_graph(layout, 12);
            let wide = steps(&g);
            for max in TILE_PIXELS {
                let small = steps_tiled(&g, max);
                assert_eq!(small.len(), wide.len());
                let mut cut = 0;
                for (a, b) in wide.iter().zip(&small) {
                    let (Step::Bottleneck(a), Step::Bottleneck(b)) = (a, b) else {
                        assert_eq!(a, b);
                        continue;
                    };
                    assert_eq!(Bottleneck { tile: a.tile, ..*b }, *a);
                    let (ta, tb) = (a.tile, b.tile);
                    assert_eq!(ta.step, tb.step);
                    let pixels = tb.size[0] * tb.size[1];
                    assert!((MIN_TILE..=max).contains(&pixels), "{b:?}");
                    assert_eq!(THREADS % pixels, 0);
                    assert_eq!(CPU_THREADS % pixels, 0);
                    // Inside the wider tile, so its staged memory is no larger.
                    assert!(tb.size[0] <= ta.size[0] && tb.size[1] <= ta.size[1]);
                    let (sa, sb) = (a.shape(&g), b.shape(&g));
                    let staged = |s: &BlockShape| {
                        let [hw, hh] = s.halo();
                        let [fkh, fkw] = s.first_kernel.unwrap_or([1, 1]);
                        s.mid.div_ceil(4) * (hw + fkw - 1) * (hh + fkh - 1)
                    };
                    assert!(staged(&sb) <= staged(&sa) && staged(&sb) <= TILE_VEC4);
                    // Rows stay 8 pixels wide, for whole memory transactions.
                    assert_eq!(tb.size[0], 8, "{b:?}");
                    cut += (ta != tb) as usize;
                }
                // With 32 pixels every 64-pixel tile is cut in two: all blocks but the
                // asymmetric ones and the two of dilation 2, which are 8x4 already.
                let expect = if max == PIXELS { 0 } else { 19 + 2 - 2 };
                assert_eq!(cut, expect, "{layout:?} {max}");
                assert_eq!(dispatch_count(&small), 29);
            }
        }
    }

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

    #[test]
    fn staged_tiles_fit_workgroup_memory() {
        let tile = |size, step| Some(Tile { size, step });
        // 32 channels: 3x3 at dilation 1 in contiguous 8x8 tiles, dilation 2 in 8x4; larger
        // dilations in 8x8 tiles of pixels a dilation apart.
        assert_eq!(staged_tile(32, [3, 3], [1, 1]), tile([8, 8], [1, 1]));
        assert_eq!(staged_tile(32, [3, 3], [2, 2]), tile([8, 4], [1, 1]));
        assert_eq!(staged_tile(32, [3, 3], [4, 4]), tile([8, 8], [4, 4]));
        assert_eq!(staged_tile(32, [3, 3], [16, 16]), tile([8, 8], [16, 16]));
        assert_eq!(staged_tile(16, [3, 3], [4, 4]), tile([8, 8], [1, 1]));
        assert_eq!(staged_tile(32, [5, 1], [1, 1]), tile([8, 8], [1, 1]));
        for mid in [4, 8, 16, 32] {
            for d in [1, 2, 4, 8, 16] {
                let t = staged_tile(mid, [3, 3], [d, d]).expect("every 3x3 block stages");
                let td = d / t.step[0];
                let halo = (t.size[0] + 2 * td) * (t.size[1] + 2 * td);
                assert!(mid.div_ceil(4) * halo <= TILE_VEC4);
                assert!(t.size[0] * t.size[1] <= PIXELS);
                assert_eq!(THREADS % (t.size[0] * t.size[1]), 0);
                assert_eq!(CPU_THREADS % (t.size[0] * t.size[1]), 0);
            }
        }
    }

    #[test]
    fn asymmetric_tiles_fit_workgroup_memory() {
        // Both orders ENet uses (the paper's 1x5 then 5x1, PyTorch-ENet's 5x1 then 1x5), 32
        // channels: 8x4 tiles, whose projection over both halos (12x8 or 12x8) fits.
        let tile = |size| Some(Tile { size, step: [1, 1] });
        assert_eq!(two_conv_tile(32, [1, 5], [5, 1]), tile([8, 4]));
        assert_eq!(two_conv_tile(32, [5, 1], [1, 5]), tile([8, 4]));
        assert_eq!(two_conv_tile(16, [5, 1], [1, 5]), tile([8, 8]));
        assert_eq!(two_conv_tile(32, [9, 9], [9, 9]), None);
    }

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

    #[test]
    fn the_ends_fold_only_where_their_kernels_fit() {
        for classes in [12, 16, 17, 40] {
            let g = synthetic_graph(Layout::Paper, classes);
            let steps = steps(&g);
            assert!(matches!(steps[0], Step::FrameInitial(_)));
            let folded = matches!(steps.last(), Some(Step::WithArgmax(_)));
            assert_eq!(folded, classes <= ARGMAX_CLASSES, "{classes} classes");
            assert_eq!(dispatch_count(&steps), 29 + !folded as usize);
        }
        // An initial block of another stride reads a larger tile: the preprocessing stays
        // its own dispatch.
        let mut g = synthetic_graph(Layout::Paper, 12);
        if let Op::Initial { conv, .. } = &mut g.ops[0] {
            conv.geom.stride = [1, 1];
        }
        let steps = steps(&g);
        assert!(matches!(steps[0], Step::Op(0)));
        assert_eq!(dispatch_count(&steps), 30);
    }

    #[test]
    fn a_projection_read_twice_does_not_fuse() {
        let mut g = synthetic_graph(Layout::Paper, 12);
        let Some(Step::Bottleneck(b)) = steps(&g)
            .into_iter()
            .find(|s| matches!(s, Step::Bottleneck(b) if b.proj.is_some()))
        else {
            panic!("no bottleneck")
        };
        let Op::Conv { output, .. } = g.ops[b.proj.unwrap()] else {
            unreachable!()
        };
        // Make the final op also read the projection (as a residual): it must stay its own op.
        let last = g.ops.len() - 1;
        if let Op::Conv { residual, .. } = &mut g.ops[last] {
            *residual = Some(crate::model::graph::Residual {
                tensor: output,
                slope: vec![],
            });
        }
        assert!(!steps(&g).contains(&Step::Bottleneck(b)));
    }
}
