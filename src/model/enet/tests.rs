//! ENet's graph checked: its ops named by layer, its parameters and multiply-adds counted.

use super::*;

/// Every op carries its layer's name (the timing panel and `enet bench` show them).
#[test]
fn every_op_is_named_by_its_layer() {
    for layout in [Layout::Paper, Layout::PytorchEnet] {
        let g = crate::model::weights::synthetic_graph(layout, 12);
        assert_eq!(g.names.len(), g.ops.len(), "{layout:?}");
        assert!(g.names.iter().all(|n| !n.is_empty()), "{layout:?}");
        assert_eq!(g.name(0), Some("initial"));
        assert_eq!(g.name(1), Some("bottleneck1_0.pool"));
        assert!(g.names.iter().any(|n| n == "bottleneck4_0.unpool"));
        assert!(
            g.names.iter().any(|n| n == "bottleneck2_1.conv"),
            "{:?}",
            g.names
        );
        assert_eq!(g.name(g.ops.len() - 1), Some("fullconv"));
    }
}

fn count(layout: Layout) -> usize {
    expected_params(layout, 12)
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

/// Parameter counts from the architecture notes (BN affine and PReLU included, BN
/// running statistics not).
#[test]
fn parameter_counts_match_the_architecture_notes() {
    let trainable = |layout| {
        let stats: usize = expected_params(layout, 12)
            .iter()
            .filter(|p| p.name.ends_with("running_mean") || p.name.ends_with("running_var"))
            .map(|p| p.shape[0])
            .sum();
        count(layout) - stats
    };
    assert_eq!(trainable(Layout::Paper), 363_856);
    assert_eq!(trainable(Layout::PytorchEnet), 350_652);
}

#[test]
fn multiply_adds_match_the_architecture_notes() {
    for (layout, want) in [(Layout::Paper, 1.27), (Layout::PytorchEnet, 1.29)] {
        let g = build_graph(layout, 12, &mut Recorder(Vec::new())).unwrap();
        let base = g.multiply_adds(360, 480).unwrap();
        let got = base as f64 / 1e9;
        assert!(
            (got - want).abs() < 0.006,
            "{layout} 480x360: {got:.3} G vs {want} G"
        );
        // Every layer's area is the input's over a power of 4, so the count is exactly
        // proportional to the input area.
        for (w, h) in [(640, 360), (1024, 512)] {
            let m = g.multiply_adds(h, w).unwrap() as u128;
            assert_eq!(
                m * (480 * 360),
                base as u128 * (w * h) as u128,
                "{layout} {w}x{h}"
            );
        }
    }
}

#[test]
fn shapes_follow_the_layer_table() {
    for layout in Layout::ALL {
        let g = build_graph(layout, 7, &mut Recorder(Vec::new())).unwrap();
        let shapes = g.shapes(360, 480).unwrap();
        let out = shapes[g.output];
        assert_eq!((out.c, out.h, out.w), (7, 360, 480), "{layout}");
        // Every tensor is at one of the four scales.
        for s in &shapes {
            assert!([1, 2, 4, 8].contains(&(480 / s.w)), "{layout}: {s:?}");
            assert_eq!(360 / s.h, 480 / s.w);
        }
    }
}
