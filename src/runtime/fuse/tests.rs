//! The fusion decided on ENet's layouts and on odd graphs, without a GPU.

use super::*;
use crate::kernels::bottleneck::{CPU_THREADS, THREADS};
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
