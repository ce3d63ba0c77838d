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

pub use crate::kernels::bottleneck::{BlockShape, Bottleneck, Tile};
pub use crate::kernels::upsample::{UpShape, Upsample};

use crate::kernels::bottleneck::{MAX_MID, TILE_VEC4};
use crate::kernels::conv::ARGMAX_CLASSES;
use crate::kernels::upsample::UP_TILE_VEC4;
use crate::model::graph::{Graph, Op};

/// Output pixels of a fused bottleneck's tile, at most.
pub const PIXELS: usize = 64;
/// A tile smaller than this leaves most of the workgroup idle: two dispatches then.
pub const MIN_TILE: usize = 32;

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
mod tests;
