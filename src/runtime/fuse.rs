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
    pub tile: Option<[usize; 2]>,
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
    /// The staged tile, or None for the two-dispatch form.
    pub tile: Option<[usize; 2]>,
}

impl BlockShape {
    /// The output tile a workgroup computes.
    pub fn tile(&self) -> [usize; 2] {
        self.tile.unwrap_or([8, 8])
    }

    /// The pipeline-overridable constants of `shaders/bottleneck.wgsl`.
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let t = self.tile();
        let halo_w = t[0] + (self.kernel[1] - 1) * self.dilation[1];
        let halo_h = t[1] + (self.kernel[0] - 1) * self.dilation[0];
        [
            ("CH", self.ch),
            ("MID", self.mid),
            ("RES_C", self.res_c),
            ("K_H", self.kernel[0]),
            ("K_W", self.kernel[1]),
            ("DIL_H", self.dilation[0]),
            ("DIL_W", self.dilation[1]),
            ("TILE_W", t[0]),
            ("TILE_H", t[1]),
            ("HALO_W", halo_w),
            ("HALO_H", halo_h),
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

/// The largest tile (`[w, h]`, at most [`THREADS`] pixels, at least [`MIN_TILE`]) whose
/// halo'd projection of `mid` channels fits in [`TILE_VEC4`].
fn staged_tile(mid: usize, kernel: [usize; 2], dilation: [usize; 2]) -> Option<[usize; 2]> {
    let groups = mid.div_ceil(4);
    [[8, 8], [16, 4], [8, 4], [4, 8]]
        .into_iter()
        .filter(|t| t[0] * t[1] >= MIN_TILE)
        .find(|t| {
            let hw = t[0] + (kernel[1] - 1) * dilation[1];
            let hh = t[1] + (kernel[0] - 1) * dilation[0];
            groups * hw * hh <= TILE_VEC4
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
            // Regular and dilation-2 blocks in one dispatch. Tails after the ops before them:
            // dilations 4, 8, 16 (after the projection), the asymmetric blocks (after the
            // projection and the first of their two convolutions) and the downsampling blocks
            // (after the pooling and the strided projection). The upsampling blocks (a
            // transposed convolution) are not fused.
            assert_eq!(one.len(), 13, "{layout:?}: {one:?}");
            assert_eq!(tails.len(), 6 + 4 + 2, "{layout:?}: {tails:?}");
            for s in ["2", "3"] {
                assert!(one.contains(&format!("bottleneck{s}_2.conv")), "{one:?}");
                for b in ["4", "6", "8"] {
                    assert!(
                        tails.contains(&format!("bottleneck{s}_{b}.conv")),
                        "{tails:?}"
                    );
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
            assert_eq!(dispatch_count(&steps), ops + 2 - 2 * 13 - 12, "{layout:?}");
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
        // 32 channels: 3x3 at dilation 1 in 8x8 tiles, dilation 2 in 8x4, none beyond.
        assert_eq!(staged_tile(32, [3, 3], [1, 1]), Some([8, 8]));
        assert_eq!(staged_tile(32, [3, 3], [2, 2]), Some([8, 4]));
        assert_eq!(staged_tile(32, [3, 3], [4, 4]), None);
        assert_eq!(staged_tile(16, [3, 3], [4, 4]), Some([8, 8]));
        assert_eq!(staged_tile(32, [5, 1], [1, 1]), Some([8, 8]));
        for mid in [4, 8, 16, 32] {
            for d in [1, 2, 4, 8, 16] {
                if let Some(t) = staged_tile(mid, [3, 3], [d, d]) {
                    let halo = (t[0] + 2 * d) * (t[1] + 2 * d);
                    assert!(mid.div_ceil(4) * halo <= TILE_VEC4);
                    assert!(t[0] * t[1] <= THREADS);
                }
            }
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
