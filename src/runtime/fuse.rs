//! Which ops run fused, decided from the graph alone (no device): the first step of lowering
//! a graph into dispatches, tested without a GPU.
//!
//! A bottleneck (1x1 projection -> main convolution -> 1x1 expansion + residual + PReLU, as
//! three [`Op::Conv`]s) runs as one dispatch of `shaders/bottleneck.wgsl` when the projection
//! of a tile of outputs with its halo fits in WebGPU's default 16 KiB of workgroup memory
//! (regular and dilation-2 blocks), and in two where it does not (dilations of 4 and more:
//! the projection as its own 1x1 dispatch, then main, expansion and residual together).

use crate::model::graph::{Graph, Op};

/// Workgroup memory the fused kernel stages the projection in, in vec4s (16 KiB).
pub const TILE_VEC4: usize = 1024;
/// Invocations of the fused kernel's workgroup: at most one output pixel each.
pub const THREADS: usize = 64;
/// The main convolution's channels are kept in registers: at most this many.
pub const MAX_MID: usize = 32;
/// A tile smaller than this leaves most of the workgroup idle: two dispatches then.
const MIN_TILE: usize = 32;

/// One fused bottleneck: its three ops, and the output tile `[w, h]` of the one-dispatch
/// form (None: two dispatches, the projection first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    pub proj: usize,
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
        let Op::Conv { conv, .. } = &graph.ops[self.main] else {
            unreachable!("a bottleneck's main op is a convolution")
        };
        let Op::Conv { conv: proj, .. } = &graph.ops[self.proj] else {
            unreachable!("a bottleneck's projection is a convolution")
        };
        BlockShape {
            ch: proj.cin,
            mid: proj.cout,
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

/// Ops `i`, `i + 1`, `i + 2` as a bottleneck, if they are one: a 1x1 projection, a stride-1
/// "same" convolution, a 1x1 expansion back to the block's input channels with the block's
/// input as residual, the intermediate tensors read by nothing else.
fn bottleneck_at(graph: &Graph, i: usize, readers: &[usize]) -> Option<Bottleneck> {
    let [a, b, c] = [
        graph.ops.get(i)?,
        graph.ops.get(i + 1)?,
        graph.ops.get(i + 2)?,
    ];
    let (
        Op::Conv {
            input: x,
            output: pa,
            conv: proj,
            residual: None,
        },
        Op::Conv {
            input: ib,
            output: pb,
            conv: main,
            residual: None,
        },
        Op::Conv {
            input: ic,
            conv: expand,
            residual: Some(res),
            ..
        },
    ) = (a, b, c)
    else {
        return None;
    };
    let g = main.geom;
    let same = g.stride == [1, 1]
        && !g.transposed
        && g.pad[0] * 2 == (g.kernel[0] - 1) * g.dilation[0]
        && g.pad[1] * 2 == (g.kernel[1] - 1) * g.dilation[1];
    let pointwise = |o: &Op| o.kind() == "conv1x1";
    let chained = ib == pa && ic == pb && readers[*pa] == 1 && readers[*pb] == 1;
    let fits = proj.cout == main.cin
        && main.cout == main.cin
        && main.cout <= MAX_MID
        && expand.cin == main.cout
        && expand.cout == proj.cin
        && res.tensor == *x;
    if !(same && chained && fits && pointwise(a) && pointwise(c)) {
        return None;
    }
    Some(Bottleneck {
        proj: i,
        main: i + 1,
        expand: i + 2,
        tile: staged_tile(main.cout, g.kernel, g.dilation),
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
        match bottleneck_at(graph, i, &readers) {
            Some(b) => {
                if b.tile.is_none() {
                    out.push(Step::Op(b.proj));
                }
                out.push(Step::Bottleneck(b));
                i += 3;
            }
            None => {
                out.push(Step::Op(i));
                i += 1;
            }
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
/// two-dispatch bottleneck reads its projection in the fused dispatch, so that tensor lives
/// until then (its buffer must not be the fused dispatch's output).
pub fn last_use(graph: &Graph, steps: &[Step]) -> Vec<Option<usize>> {
    let mut last = graph.last_use();
    for s in steps {
        if let Step::Bottleneck(b) = s
            && let Op::Conv { output, .. } = &graph.ops[b.proj]
        {
            last[*output] = Some(b.expand);
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
                .filter(|b| b.tile.is_some())
                .map(|b| name(b))
                .collect();
            let two: Vec<String> = fused
                .iter()
                .filter(|b| b.tile.is_none())
                .map(|b| name(b))
                .collect();
            // Regular and dilation-2 blocks in one dispatch; dilations 4, 8, 16 in two. The
            // asymmetric blocks (two main convolutions) and the down- and upsampling blocks
            // are not bottlenecks of this form.
            assert_eq!(one.len(), 13, "{layout:?}: {one:?}");
            assert_eq!(two.len(), 6, "{layout:?}: {two:?}");
            for s in ["2", "3"] {
                assert!(one.contains(&format!("bottleneck{s}_2.conv")), "{one:?}");
                assert!(two.contains(&format!("bottleneck{s}_8.conv")), "{two:?}");
            }
            assert!(one.contains(&"bottleneck1_1.conv".to_string()));
            assert!(one.contains(&"bottleneck5_1.conv".to_string()));
            let ops = g.ops.len();
            assert_eq!(dispatch_count(&steps), ops + 2 - 2 * 13 - 6, "{layout:?}");
            // Every op is emitted exactly once.
            let mut seen = vec![0; ops];
            for s in &steps {
                match s {
                    Step::Op(i) => seen[*i] += 1,
                    Step::Bottleneck(b) => {
                        seen[b.main] += 1;
                        seen[b.expand] += 1;
                        if b.tile.is_some() {
                            seen[b.proj] += 1;
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
            .find(|s| matches!(s, Step::Bottleneck(_)))
        else {
            panic!("no bottleneck")
        };
        let Op::Conv { output, .. } = g.ops[b.proj] else {
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
