//! Which ops run fused, decided from the graph alone (no device): the first step of lowering
//! a graph into dispatches, tested without a GPU.
//!
//! A bottleneck (1x1 projection -> main convolution -> 1x1 expansion + residual + PReLU, as
//! three [`Op::Conv`]s) runs as one dispatch of `shaders/bottleneck.wgsl` when the projection
//! of a tile of outputs with its halo fits in WebGPU's default 16 KiB of workgroup memory
//! (regular and dilation-2 blocks). Otherwise its tail (main convolution, expansion, residual,
//! PReLU) is one dispatch after the ops before it: the projection of a block with a large
//! dilation, the projection and first convolution of an asymmetric block, the pooling and
//! strided projection of a downsampling block.

use crate::model::graph::{Graph, Op};

/// Workgroup memory the fused kernel stages the projection in, in vec4s (16 KiB).
pub const TILE_VEC4: usize = 1024;
/// Invocations of the fused kernel's workgroup: at most one output pixel each.
pub const THREADS: usize = 64;
/// The main convolution's channels are kept in registers: at most this many.
pub const MAX_MID: usize = 32;
/// A tile smaller than this leaves most of the workgroup idle: two dispatches then.
const MIN_TILE: usize = 32;

/// One fused dispatch: a whole bottleneck (`proj` and the output tile `[w, h]` staged in
/// workgroup memory) or its tail (no `proj`, no tile: the main convolution reads its input
/// from memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    pub proj: Option<usize>,
    pub main: usize,
    pub expand: usize,
    pub tile: Option<Tile>,
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
    /// The staged tile, or None for a tail.
    pub tile: Option<Tile>,
}

impl BlockShape {
    /// The output tile a workgroup computes (a tail: 8x8 contiguous pixels).
    pub fn tile(&self) -> Tile {
        self.tile.unwrap_or(Tile {
            size: [8, 8],
            step: [1, 1],
        })
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
            ("HALO_W", t.size[0] + (self.kernel[1] - 1) * td[1]),
            ("HALO_H", t.size[1] + (self.kernel[0] - 1) * td[0]),
            ("STAGED", self.tile.is_some() as usize),
        ]
        .into_iter()
        .map(|(k, v)| (k, v as f64))
        .collect()
    }
}

impl Bottleneck {
    /// The kind of block, for its pipeline.
    pub fn shape(&self, graph: &Graph) -> BlockShape {
        let (
            Op::Conv { conv, .. },
            Op::Conv {
                conv: expand,
                residual: Some(res),
                ..
            },
        ) = (&graph.ops[self.main], &graph.ops[self.expand])
        else {
            unreachable!("a bottleneck's main op is a convolution, its last has a residual")
        };
        BlockShape {
            ch: expand.cout,
            mid: conv.cin,
            res_c: graph.tensors[res.tensor].channels,
            kernel: conv.geom.kernel,
            dilation: conv.geom.dilation,
            tile: self.tile,
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
}

/// The largest tile (at most [`THREADS`] pixels, at least [`MIN_TILE`]) whose halo'd
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
/// (of at most as many channels), the convolution's output read by nothing else.
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
    (same(main) && fits && op.kind() == "conv1x1" && ic == pb && readers[*pb] == 1).then_some(
        Bottleneck {
            proj: None,
            main: i,
            expand: i + 1,
            tile: None,
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
        tile: Some(tile),
        ..tail
    })
}

/// The graph's ops as the steps the lowering emits.
pub fn steps(graph: &Graph) -> Vec<Step> {
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
        if let Some(b) = bottleneck_at(graph, i, &readers) {
            out.push(Step::Bottleneck(b));
            i += 3;
        } else if let Some(t) = tail_at(graph, i, &readers) {
            out.push(Step::Bottleneck(t));
            i += 2;
        } else {
            out.push(Step::Op(i));
            i += 1;
        }
    }
    out
}

/// Every op as its own dispatch (fusion off).
pub fn unfused(graph: &Graph) -> Vec<Step> {
    (0..graph.ops.len()).map(Step::Op).collect()
}

/// Dispatches per frame: preprocessing, the steps, the argmax.
pub fn dispatch_count(steps: &[Step]) -> usize {
    steps.len() + 2
}

/// The op after which each tensor is no longer read, with fusion taken into account: a
/// tail reads its main convolution's input in the fused dispatch (at the expansion), so that
/// tensor lives until then (its buffer must not be the fused dispatch's output).
pub fn last_use(graph: &Graph, steps: &[Step]) -> Vec<Option<usize>> {
    let mut last = graph.last_use();
    for s in steps {
        if let Step::Bottleneck(b) = s
            && b.proj.is_none()
            && let Op::Conv { input, .. } = &graph.ops[b.main]
        {
            last[*input] = Some(b.expand);
        }
    }
    last
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
            let one: Vec<String> = fused
                .iter()
                .filter(|b| b.proj.is_some())
                .map(|b| name(b))
                .collect();
            let tails: Vec<String> = fused
                .iter()
                .filter(|b| b.proj.is_none())
                .map(|b| name(b))
                .collect();
            // Regular and dilated blocks in one dispatch. Tails after the ops before them:
            // the asymmetric blocks (after the projection and the first of their two
            // convolutions) and the downsampling blocks (after the pooling and the strided
            // projection). The upsampling blocks (a transposed convolution) are not fused.
            assert_eq!(one.len(), 19, "{layout:?}: {one:?}");
            assert_eq!(tails.len(), 4 + 2, "{layout:?}: {tails:?}");
            for s in ["2", "3"] {
                for b in ["1", "2", "4", "5", "6", "8"] {
                    assert!(one.contains(&format!("bottleneck{s}_{b}.conv")), "{one:?}");
                }
                for b in ["3", "7"] {
                    assert!(
                        tails.contains(&format!("bottleneck{s}_{b}.conv2")),
                        "{tails:?}"
                    );
                }
            }
            for s in ["1", "2"] {
                assert!(
                    tails.contains(&format!("bottleneck{s}_0.conv")),
                    "{tails:?}"
                );
            }
            assert!(one.contains(&"bottleneck1_1.conv".to_string()));
            assert!(one.contains(&"bottleneck5_1.conv".to_string()));
            let ops = g.ops.len();
            assert_eq!(dispatch_count(&steps), ops + 2 - 2 * 19 - 6, "{layout:?}");
            // Every op is emitted exactly once.
            let mut seen = vec![0; ops];
            for s in &steps {
                match s {
                    Step::Op(i) => seen[*i] += 1,
                    Step::Bottleneck(b) => {
                        seen[b.main] += 1;
                        seen[b.expand] += 1;
                        if let Some(p) = b.proj {
                            seen[p] += 1;
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
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
                assert!(t.size[0] * t.size[1] <= THREADS);
            }
        }
    }

    #[test]
    fn strided_tiles_cover_every_pixel_once() {
        for (w, h, step) in [(60, 45, 16), (20, 13, 4), (9, 7, 2), (64, 48, 1)] {
            let shape = BlockShape {
                ch: 128,
                mid: 32,
                res_c: 128,
                kernel: [3, 3],
                dilation: [step, step],
                tile: Some(Tile {
                    size: [8, 8],
                    step: [step, step],
                }),
            };
            let [gx, gy] = shape.grid(w, h);
            // The shader's mapping of workgroup and invocation to output pixel.
            let mut seen = vec![0; w * h];
            for wy in 0..gy {
                for wx in 0..gx {
                    let x0 = wx % step + (wx / step) * 8 * step;
                    let y0 = wy % step + (wy / step) * 8 * step;
                    for t in 0..64 {
                        let (ox, oy) = (x0 + (t % 8) * step, y0 + (t / 8) * step);
                        if ox < w && oy < h {
                            seen[oy * w + ox] += 1;
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{w}x{h} step {step}");
        }
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
