//! Every kernel against its CPU twin on random inputs: non-square shapes, odd channel
//! counts, pooling ties.

mod common;

use common::*;
use enet_wgpu::kernels::twin::{self, Tensor};
use enet_wgpu::kernels::upscale::{self, Upscale};
use enet_wgpu::model::graph::{Conv, ConvGeom, DType, Graph, Op, Residual, Shape};
use enet_wgpu::model::weights::SplitMix;
use enet_wgpu::runtime::{DrawOptions, View};

fn random_conv(rng: &mut SplitMix, cin: usize, cout: usize, geom: ConvGeom) -> Conv {
    let k = geom.kernel[0] * geom.kernel[1];
    let a = (3.0 / (cin * k) as f32).sqrt();
    Conv {
        cin,
        cout,
        geom,
        weight: (0..cout * cin * k).map(|_| rng.uniform(-a, a)).collect(),
        bias: (0..cout).map(|_| rng.uniform(-0.5, 0.5)).collect(),
        // Mix identity, ReLU and PReLU slopes.
        slope: (0..cout)
            .map(|i| [1.0, 0.0, rng.uniform(0.0, 0.5)][i % 3])
            .collect(),
    }
}

/// Appends a random convolution of `input` (with `residual` added before its second
/// activation) to `g`; returns its output.
fn push_conv(
    g: &mut Graph,
    rng: &mut SplitMix,
    input: usize,
    cout: usize,
    geom: ConvGeom,
    residual: Option<usize>,
) -> usize {
    let cin = g.tensors[input].channels;
    let output = g.tensor(cout, DType::F32);
    let residual = residual.map(|tensor| Residual {
        tensor,
        slope: (0..cout).map(|_| rng.uniform(0.0, 0.5)).collect(),
    });
    g.ops.push(Op::Conv {
        input,
        output,
        conv: random_conv(rng, cin, cout, geom),
        residual,
    });
    output
}

/// Appends a downsampling block on tensor 0 (2x2 max-pool with indices; 2x2 stride 2
/// projection to `mid`, 3x3 convolution, expansion to `cout` with the pooled input as
/// residual); returns its output and the pool's indices.
fn push_downsampling(g: &mut Graph, rng: &mut SplitMix, mid: usize, cout: usize) -> (usize, usize) {
    let c = g.tensors[0].channels;
    let pooled = g.tensor(c, DType::F32);
    let indices = g.tensor(c, DType::U32);
    g.ops.push(Op::MaxPool {
        input: 0,
        output: pooled,
        indices,
    });
    let a = push_conv(g, rng, 0, mid, ConvGeom::new(2, 2).stride(2), None);
    let b = push_conv(g, rng, a, mid, ConvGeom::new(3, 3).pad(1, 1), None);
    let out = push_conv(g, rng, b, cout, ConvGeom::new(1, 1), Some(pooled));
    (out, indices)
}

/// Appends an asymmetric bottleneck on `x` (1x1 projection to `mid`, kx1 and 1xk
/// convolutions, expansion to `ch` with `x` as residual); returns its output.
fn push_asymmetric_k(
    g: &mut Graph,
    rng: &mut SplitMix,
    x: usize,
    (mid, ch): (usize, usize),
    k: usize,
) -> usize {
    let a = push_conv(g, rng, x, mid, ConvGeom::new(1, 1), None);
    let b = push_conv(g, rng, a, mid, ConvGeom::new(k, 1).pad(k / 2, 0), None);
    let c = push_conv(g, rng, b, mid, ConvGeom::new(1, k).pad(0, k / 2), None);
    push_conv(g, rng, c, ch, ConvGeom::new(1, 1), Some(x))
}

/// ENet's asymmetric bottleneck: 5x1 and 1x5.
fn push_asymmetric(g: &mut Graph, rng: &mut SplitMix, x: usize, mid: usize, ch: usize) -> usize {
    push_asymmetric_k(g, rng, x, (mid, ch), 5)
}

/// Appends an upsampling block on `x` to `c` channels at tensor 0's size (1x1 main branch
/// unpooled with `indices`; 1x1 projection to `mid`, the transposed convolution `tgeom`,
/// expansion with the unpooled branch as residual); returns its output.
fn push_upsampling(
    g: &mut Graph,
    rng: &mut SplitMix,
    x: usize,
    indices: usize,
    c: usize,
    mid: usize,
    tgeom: ConvGeom,
) -> usize {
    let m = push_conv(g, rng, x, c, ConvGeom::new(1, 1), None);
    let unpooled = g.tensor(c, DType::F32);
    g.ops.push(Op::Unpool {
        input: m,
        indices,
        like: 0,
        output: unpooled,
    });
    let p = push_conv(g, rng, x, mid, ConvGeom::new(1, 1), None);
    let t = push_conv(g, rng, p, mid, tgeom, None);
    push_conv(g, rng, t, c, ConvGeom::new(1, 1), Some(unpooled))
}

/// One conv (optionally with a residual produced by a 1x1 conv of the input) on GPU and CPU.
fn check_conv(
    seed: u64,
    cin: usize,
    cout: usize,
    (w, h): (usize, usize),
    geom: ConvGeom,
    residual_c: Option<usize>,
) {
    let mut rng = SplitMix(seed);
    let mut g = Graph::new(cin);
    let input = random_tensor(&mut rng, Shape { c: cin, h, w });
    let conv = random_conv(&mut rng, cin, cout, geom);
    let residual = residual_c.map(|rc| {
        let rconv = random_conv(&mut rng, cin, rc, geom);
        let t = g.tensor(rc, DType::F32);
        g.ops.push(Op::Conv {
            input: 0,
            output: t,
            conv: rconv,
            residual: None,
        });
        Residual {
            tensor: t,
            slope: (0..cout).map(|_| rng.uniform(0.0, 0.5)).collect(),
        }
    });
    let out = g.tensor(cout, DType::F32);
    g.ops.push(Op::Conv {
        input: 0,
        output: out,
        conv,
        residual,
    });
    g.output = out;
    let want = twin::run(&g, input.clone());
    let got = run_gpu(&g, &input, &[out]);
    let what = format!("conv {cin}->{cout} {w}x{h} {geom:?} residual {residual_c:?}");
    assert_close(&got[0], &want.data, 1e-5, &what);
}

#[test]
fn conv2d_3x3() {
    check_conv(1, 5, 7, (13, 9), ConvGeom::new(3, 3).pad(1, 1), None);
    check_conv(2, 16, 16, (24, 16), ConvGeom::new(3, 3).pad(1, 1), None);
}

#[test]
fn conv2d_dilated() {
    for (seed, d) in [(3, 2), (4, 4), (5, 16)] {
        check_conv(
            seed,
            6,
            9,
            (21, 11),
            ConvGeom::new(3, 3).pad(d, d).dilation(d),
            None,
        );
    }
}

#[test]
fn conv2d_asymmetric() {
    check_conv(6, 7, 5, (17, 10), ConvGeom::new(5, 1).pad(2, 0), None);
    check_conv(7, 7, 5, (17, 10), ConvGeom::new(1, 5).pad(0, 2), None);
}

#[test]
fn conv2d_2x2_stride_2() {
    check_conv(8, 3, 11, (18, 10), ConvGeom::new(2, 2).stride(2), None);
    // Odd sizes floor, as PyTorch.
    check_conv(9, 4, 6, (15, 9), ConvGeom::new(2, 2).stride(2), None);
}

#[test]
fn conv1x1() {
    check_conv(10, 13, 6, (11, 7), ConvGeom::new(1, 1), None);
}

#[test]
fn conv1x1_with_residual_add_and_activation() {
    check_conv(11, 9, 12, (10, 6), ConvGeom::new(1, 1), Some(12));
}

#[test]
fn conv1x1_with_zero_padded_residual() {
    // The downsampling skip: fewer residual channels than outputs (ENet's channel padding).
    check_conv(12, 5, 10, (9, 13), ConvGeom::new(1, 1), Some(3));
}

#[test]
fn conv2d_with_residual() {
    check_conv(13, 4, 7, (12, 5), ConvGeom::new(3, 3).pad(1, 1), Some(5));
}

#[test]
fn conv_transpose2d_2x2_stride_2() {
    check_conv(
        14,
        5,
        7,
        (9, 6),
        ConvGeom::new(2, 2).stride(2).transposed(0),
        None,
    );
}

#[test]
fn conv_transpose2d_3x3_stride_2_output_padding() {
    check_conv(
        15,
        6,
        13,
        (7, 10),
        ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
        None,
    );
    check_conv(
        16,
        16,
        12,
        (8, 6),
        ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
        None,
    );
}

/// A whole bottleneck (projection, main convolution, expansion with the residual) as the
/// fused kernel runs it, against the three convolutions' twins: staged in workgroup memory in
/// contiguous tiles (dilations 1 and 2, asymmetric kernels) and in tiles of pixels a dilation
/// apart (dilation 4 and more), on frames that tiles do not divide.
fn check_bottleneck(seed: u64, ch: usize, mid: usize, (w, h): (usize, usize), geom: ConvGeom) {
    let mut rng = SplitMix(seed);
    let mut g = Graph::new(ch);
    let input = random_tensor(&mut rng, Shape { c: ch, h, w });
    let a = g.tensor(mid, DType::F32);
    let b = g.tensor(mid, DType::F32);
    let out = g.tensor(ch, DType::F32);
    g.ops.push(Op::Conv {
        input: 0,
        output: a,
        conv: random_conv(&mut rng, ch, mid, ConvGeom::new(1, 1)),
        residual: None,
    });
    g.ops.push(Op::Conv {
        input: a,
        output: b,
        conv: random_conv(&mut rng, mid, mid, geom),
        residual: None,
    });
    g.ops.push(Op::Conv {
        input: b,
        output: out,
        conv: random_conv(&mut rng, mid, ch, ConvGeom::new(1, 1)),
        residual: Some(Residual {
            tensor: 0,
            slope: (0..ch).map(|_| rng.uniform(0.0, 0.5)).collect(),
        }),
    });
    g.output = out;
    let steps = enet_wgpu::runtime::fuse::steps(&g);
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, enet_wgpu::runtime::fuse::Step::Bottleneck(_))),
        "{steps:?}"
    );
    let want = twin::run(&g, input.clone());
    let got = run_gpu(&g, &input, &[out]);
    let what = format!("bottleneck {ch}/{mid} {w}x{h} {geom:?} {steps:?}");
    assert_close(&got[0], &want.data, 1e-4, &what);
}

/// Asymmetric blocks, and bottleneck tails (main convolution, expansion, residual in one
/// dispatch after the ops before them) where a block does not fit one; and a downsampling
/// block, whose residual (the pooled input) has fewer channels than the output, in one
/// dispatch.
#[test]
fn fused_bottleneck_tails() {
    let check = |g: Graph, input: Tensor, tails: usize, what: &str| {
        let steps = enet_wgpu::runtime::fuse::steps(&g);
        let n = steps
            .iter()
            .filter(
                |s| matches!(s, enet_wgpu::runtime::fuse::Step::Bottleneck(b) if b.proj.is_none()),
            )
            .count();
        assert_eq!(n, tails, "{what}: {steps:?}");
        let want = twin::run(&g, input.clone());
        let got = run_gpu(&g, &input, &[g.output]);
        assert_close(&got[0], &want.data, 1e-4, what);
    };
    let mut rng = SplitMix(40);
    // ENet's asymmetric blocks in one dispatch (no tail: both convolutions staged in turn);
    // one whose two 9-tap convolutions are too wide to stage together, in two (its projection
    // staged for the first, then the tail).
    for (ch, mid, (w, h), k, tails) in [
        (64, 16, (19, 13), 5, 0),
        (128, 32, (11, 9), 5, 0),
        (128, 32, (21, 19), 5, 0),
        (128, 32, (21, 19), 9, 1),
    ] {
        let mut g = Graph::new(ch);
        let input = random_tensor(&mut rng, Shape { c: ch, h, w });
        g.output = push_asymmetric_k(&mut g, &mut rng, 0, (mid, ch), k);
        let steps = enet_wgpu::runtime::fuse::steps(&g);
        assert_eq!(steps.len(), 1 + tails, "{steps:?}");
        check(
            g,
            input,
            tails,
            &format!("asymmetric block {ch}/{mid} {k}x1, 1x{k}, {w}x{h}"),
        );
    }
    // 10 -> 30 through 6: groups of 4 partly padding in the input, the pooled residual and
    // the output.
    for (cin, cout, mid, (w, h)) in [
        (16, 64, 16, (26, 18)),
        (64, 128, 32, (14, 10)),
        (10, 30, 6, (18, 14)),
    ] {
        let mut g = Graph::new(cin);
        let input = random_tensor(&mut rng, Shape { c: cin, h, w });
        (g.output, _) = push_downsampling(&mut g, &mut rng, mid, cout);
        // No tail: the whole block is one dispatch, its strided projection computed into the
        // staged tile, its pool in the residual.
        let steps = enet_wgpu::runtime::fuse::steps(&g);
        assert!(
            matches!(steps[..], [enet_wgpu::runtime::fuse::Step::Bottleneck(b)] if b.proj.is_some() && b.pool.is_some()),
            "{steps:?}"
        );
        check(
            g,
            input,
            0,
            &format!("downsampling block {cin}->{cout}/{mid} {w}x{h}"),
        );
    }
}

/// An encoder-decoder in miniature: a downsampling block that pools (the residual and the
/// indices), then an upsampling block unpooling with those indices, in one dispatch each; against the separate ops' twins, for both transposed convolutions ENet uses, on
/// sizes the 8x8 output tiles do not divide.
#[test]
fn fused_downsampling_and_upsampling_blocks() {
    let mut rng = SplitMix(41);
    let cases = [
        (
            16,
            64,
            16,
            (26, 18),
            ConvGeom::new(2, 2).stride(2).transposed(0),
        ),
        (
            64,
            128,
            32,
            (20, 14),
            ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
        ),
        (
            16,
            64,
            4,
            (34, 10),
            ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
        ),
        // Channel counts whose last group of 4 is partly padding.
        (
            10,
            30,
            8,
            (22, 14),
            ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
        ),
    ];
    for (c, c2, mid, (w, h), tgeom) in cases {
        let mut g = Graph::new(c);
        let input = random_tensor(&mut rng, Shape { c, h, w });
        let (y, indices) = push_downsampling(&mut g, &mut rng, mid, c2);
        g.output = push_upsampling(&mut g, &mut rng, y, indices, c, mid, tgeom);
        let steps = enet_wgpu::runtime::fuse::steps(&g);
        use enet_wgpu::runtime::fuse::Step;
        let what = format!("{c}->{c2}->{c} through {mid}, {w}x{h}, {tgeom:?}: {steps:?}");
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::Bottleneck(b) if b.pool.is_some())),
            "{what}"
        );
        assert!(
            steps.iter().any(|s| matches!(s, Step::Upsample(_))),
            "{what}"
        );
        assert_eq!(steps.len(), 2, "{what}");
        let want = twin::run(&g, input.clone());
        let got = run_gpu(&g, &input, &[g.output]);
        assert_close(&got[0], &want.data, 1e-4, &what);
    }
}

/// The f16 path (activations and weights stored in f16, arithmetic in f32) against the f32
/// twins, on a graph with every kind of fused dispatch and plain convolution; where the
/// device lacks shader-f16, asking for it is a clear error.
#[test]
fn f16_storage_matches_the_twins_within_half_precision() {
    use enet_wgpu::kernels::Precision;
    let mut rng = SplitMix(42);
    let (c, mid, w, h) = (16, 16, 22, 14);
    let mut g = Graph::new(c);
    let input = random_tensor(&mut rng, Shape { c, h, w });
    let (y, indices) = push_downsampling(&mut g, &mut rng, mid, 64);
    // A regular bottleneck, an asymmetric one.
    let p = push_conv(&mut g, &mut rng, y, mid, ConvGeom::new(1, 1), None);
    let q = push_conv(
        &mut g,
        &mut rng,
        p,
        mid,
        ConvGeom::new(3, 3).pad(1, 1),
        None,
    );
    let y = push_conv(&mut g, &mut rng, q, 64, ConvGeom::new(1, 1), Some(y));
    let y = push_asymmetric(&mut g, &mut rng, y, mid, 64);
    let z = push_upsampling(
        &mut g,
        &mut rng,
        y,
        indices,
        c,
        mid,
        ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1),
    );
    g.output = push_conv(
        &mut g,
        &mut rng,
        z,
        12,
        ConvGeom::new(2, 2).stride(2).transposed(0),
        None,
    );
    if !gpu().has_f16() {
        let e = enet_wgpu::Engine::with_precision(gpu(), &g, Default::default(), Precision::F16)
            .expect_err("f16 without shader-f16");
        assert!(e.to_string().contains("shader-f16"), "{e}");
        eprintln!(
            "{}: no shader-f16, the f16 path was not run",
            gpu().describe()
        );
        return;
    }
    let want = twin::run(&g, input.clone());
    let got = run_gpu_at(&g, &input, &[g.output], Precision::F16);
    // f16 keeps 11 significant bits: about 1e-3 relative per stored value, through a dozen
    // layers.
    let diffs: Vec<f32> = got[0]
        .iter()
        .zip(&want.data)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let over = diffs.iter().filter(|&&d| d > 3e-2).count();
    eprintln!(
        "f16 vs the f32 twins: mean relative diff {mean:.2e}, {over} of {} over 3e-2",
        diffs.len()
    );
    assert!(mean <= 5e-3, "f16 network: mean relative diff {mean}");
    // A pooling window whose two largest values round to one f16 may pick the other (the
    // first wins ties): the unpooled value lands one pixel over.
    assert!(over * 200 <= diffs.len(), "f16 network: {over} values off");
    let f32 = run_gpu_at(&g, &input, &[g.output], Precision::F32);
    assert_close(&f32[0], &want.data, 1e-4, "the same network in f32");
}

#[test]
fn fused_bottleneck_staged() {
    check_bottleneck(30, 64, 16, (21, 13), ConvGeom::new(3, 3).pad(1, 1));
    check_bottleneck(31, 128, 32, (19, 11), ConvGeom::new(3, 3).pad(1, 1));
    check_bottleneck(
        32,
        128,
        32,
        (17, 9),
        ConvGeom::new(3, 3).pad(2, 2).dilation(2),
    );
    check_bottleneck(33, 16, 4, (13, 7), ConvGeom::new(3, 3).pad(1, 1));
    check_bottleneck(34, 24, 12, (9, 10), ConvGeom::new(5, 1).pad(2, 0));
    // Channel counts that are not multiples of 4: the last group of 4 in memory is partly
    // padding, which the fused kernel must neither use nor let through.
    check_bottleneck(37, 22, 6, (11, 9), ConvGeom::new(3, 3).pad(1, 1));
    check_bottleneck(
        38,
        13,
        5,
        (10, 7),
        ConvGeom::new(3, 3).pad(2, 2).dilation(2),
    );
}

#[test]
fn fused_bottleneck_large_dilations_in_strided_tiles() {
    check_bottleneck(
        35,
        128,
        32,
        (23, 14),
        ConvGeom::new(3, 3).pad(4, 4).dilation(4),
    );
    check_bottleneck(
        36,
        128,
        32,
        (20, 12),
        ConvGeom::new(3, 3).pad(16, 16).dilation(16),
    );
}

fn check_initial(seed: u64, pool_kernel: usize, pool_pad: usize, (w, h): (usize, usize)) {
    let mut rng = SplitMix(seed);
    let mut g = Graph::new(3);
    let input = random_tensor(&mut rng, Shape { c: 3, h, w });
    let out = g.tensor(16, DType::F32);
    let r =
        |rng: &mut SplitMix, lo, hi| -> Vec<f32> { (0..3).map(|_| rng.uniform(lo, hi)).collect() };
    let conv = random_conv(&mut rng, 3, 13, ConvGeom::new(3, 3).stride(2).pad(1, 1));
    let (pool_scale, pool_shift, pool_slope) = (
        r(&mut rng, -1.5, 1.5),
        r(&mut rng, -0.5, 0.5),
        r(&mut rng, 0.0, 0.5),
    );
    g.ops.push(Op::Initial {
        input: 0,
        output: out,
        conv,
        pool_kernel,
        pool_pad,
        pool_scale,
        pool_shift,
        pool_slope,
    });
    g.output = out;
    let want = twin::run(&g, input.clone());
    let got = run_gpu(&g, &input, &[out]);
    assert_close(
        &got[0],
        &want.data,
        1e-5,
        &format!("initial pool {pool_kernel}/{pool_pad} {w}x{h}"),
    );
}

#[test]
fn initial_block_pytorch_enet_pool() {
    check_initial(20, 3, 1, (22, 14));
}

#[test]
fn initial_block_paper_pool() {
    check_initial(21, 2, 0, (18, 12));
}

/// Values on a coarse grid so that 2x2 windows often hold equal maxima.
/// Runs `g` on a frame of `rgba` (`source` pixels) at network size `net` with fusion on or
/// off; returns the plan's dispatch labels, the class map and `outputs`.
fn run_frame(
    g: &Graph,
    norm: enet_wgpu::model::Normalization,
    (precision, fused): (enet_wgpu::kernels::Precision, bool),
    rgba: &[u8],
    source: (usize, usize),
    net: (usize, usize),
    outputs: &[usize],
) -> (Vec<String>, Vec<u8>, Vec<Vec<f32>>) {
    let mut engine = enet_wgpu::Engine::with_precision(gpu(), g, norm, precision).unwrap();
    engine.set_fusion(fused);
    let plan = engine.plan(net, source).unwrap();
    plan.submit_frame(
        rgba,
        enet_wgpu::runtime::FrameOptions {
            read_classes: true,
            ..Default::default()
        },
    )
    .unwrap();
    let classes = pollster::block_on(plan.read_classes()).unwrap();
    let outs = outputs
        .iter()
        .map(|&t| pollster::block_on(plan.read_tensor(t)).unwrap())
        .collect();
    let labels = plan
        .dispatch_labels()
        .iter()
        .map(|l| l.to_string())
        .collect();
    (labels, classes, outs)
}

fn random_rgba(rng: &mut SplitMix, (w, h): (usize, usize)) -> Vec<u8> {
    (0..w * h * 4)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect()
}

/// The preprocessing folded into the initial block (`shaders/frame_initial.wgsl`) against
/// the twins of both (preprocess, then the initial block), and against the two as separate
/// dispatches: both pools, resized and not, frames the 16x16 output tiles do not divide.
#[test]
fn initial_block_from_the_frame() {
    use enet_wgpu::kernels::Precision;
    let norm = enet_wgpu::model::Normalization {
        mean: [0.4, 0.5, 0.6],
        std: [0.2, 0.25, 0.3],
    };
    let mut rng = SplitMix(22);
    for (pool_kernel, pool_pad, source, net) in [
        (3, 1, (37, 29), (48, 40)),
        (2, 0, (50, 22), (34, 18)),
        (2, 0, (40, 36), (40, 36)),
    ] {
        let rgba = random_rgba(&mut rng, source);
        let mut g = Graph::new(3);
        let out = g.tensor(16, DType::F32);
        let r = |rng: &mut SplitMix, lo, hi| -> Vec<f32> {
            (0..3).map(|_| rng.uniform(lo, hi)).collect()
        };
        g.ops.push(Op::Initial {
            input: 0,
            output: out,
            conv: random_conv(&mut rng, 3, 13, ConvGeom::new(3, 3).stride(2).pad(1, 1)),
            pool_kernel,
            pool_pad,
            pool_scale: r(&mut rng, -1.5, 1.5),
            pool_shift: r(&mut rng, -0.5, 0.5),
            pool_slope: r(&mut rng, 0.0, 0.5),
        });
        g.output = out;
        let input = twin::preprocess(&rgba, source.0, source.1, net.0, net.1, &norm);
        let want = twin::run(&g, input);
        let what = format!("pool {pool_kernel}/{pool_pad}, {source:?} -> {net:?}");
        let (labels, _, got) =
            run_frame(&g, norm, (Precision::F32, true), &rgba, source, net, &[out]);
        assert_eq!(labels[0], "0:frame_initial", "{labels:?}");
        assert!(!labels.iter().any(|l| l == "preprocess"), "{labels:?}");
        assert_close(&got[0], &want.data, 1e-5, &what);
        // The same values as preprocessing and initial block in two dispatches.
        let (labels, _, apart) = run_frame(
            &g,
            norm,
            (Precision::F32, false),
            &rgba,
            source,
            net,
            &[out],
        );
        assert_eq!(labels[0], "preprocess");
        assert_close(&got[0], &apart[0], 1e-6, &format!("{what}: fused vs not"));
        if gpu().has_f16() {
            let (_, _, f16) =
                run_frame(&g, norm, (Precision::F16, true), &rgba, source, net, &[out]);
            let (_, _, f16_apart) = run_frame(
                &g,
                norm,
                (Precision::F16, false),
                &rgba,
                source,
                net,
                &[out],
            );
            assert_close(
                &f16[0],
                &f16_apart[0],
                1e-3,
                &format!("{what}: f16 fused vs not"),
            );
            assert_close(
                &f16[0],
                &want.data,
                2e-2,
                &format!("{what}: f16 vs the twins"),
            );
        }
    }
}

/// The argmax folded into the last transposed convolution (its `with_argmax` entry): the
/// logits as the twin computes them, the class map their argmax (first on ties), the same
/// as with a separate argmax dispatch; up to 16 classes, past that a dispatch of its own.
#[test]
fn last_transposed_convolution_with_argmax() {
    let norm = enet_wgpu::model::Normalization {
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    let mut rng = SplitMix(23);
    for (classes, geom) in [
        (12, ConvGeom::new(2, 2).stride(2).transposed(0)),
        (16, ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1)),
        (5, ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1)),
        (17, ConvGeom::new(2, 2).stride(2).transposed(0)),
    ] {
        let (source, net) = ((21, 13), (21, 13));
        let rgba = random_rgba(&mut rng, source);
        let mut g = Graph::new(3);
        let out = push_conv(&mut g, &mut rng, 0, classes, geom, None);
        // Ties: the first class must win.
        if let Op::Conv { conv, .. } = &mut g.ops[0] {
            let per = conv.weight.len() / classes;
            let (first, rest) = conv.weight.split_at_mut(per);
            rest[per..2 * per].copy_from_slice(first);
            conv.bias[2] = conv.bias[0];
            conv.slope[2] = conv.slope[0];
            conv.bias[0] += 0.3;
            conv.bias[2] += 0.3;
        }
        g.output = out;
        let input = twin::preprocess(&rgba, source.0, source.1, net.0, net.1, &norm);
        let want = twin::run(&g, input);
        let kind = |labels: &[String]| labels.last().unwrap().clone();
        for fused in [true, false] {
            let (labels, got_classes, got) = run_frame(
                &g,
                norm,
                (enet_wgpu::kernels::Precision::F32, fused),
                &rgba,
                source,
                net,
                &[out],
            );
            let what = format!("{classes} classes, fused {fused}");
            let folded = fused && classes <= 16;
            assert_eq!(
                kind(&labels).ends_with("+argmax"),
                folded,
                "{what}: {labels:?}"
            );
            assert_eq!(labels.len(), 3 - folded as usize, "{what}: {labels:?}");
            assert_close(&got[0], &want.data, 1e-5, &what);
            let from_logits: Vec<u8> = twin::argmax(&Tensor {
                shape: want.shape,
                data: got[0].clone(),
            })
            .into_iter()
            .map(|c| c as u8)
            .collect();
            assert_eq!(got_classes, from_logits, "{what}: class map");
            let tied = got_classes.iter().filter(|&&c| c == 0).count();
            assert!(
                !got_classes.contains(&2),
                "{what}: a tie went to the later class"
            );
            assert!(tied > 0, "{what}: the tie never won");
        }
    }
}

fn tied_tensor(rng: &mut SplitMix, shape: Shape) -> Tensor {
    Tensor {
        shape,
        data: (0..shape.len())
            .map(|_| (rng.uniform(0.0, 3.0).floor() - 1.0) * 0.5)
            .collect(),
    }
}

#[test]
fn maxpool_with_indices_and_ties() {
    let mut rng = SplitMix(30);
    for (c, w, h) in [(5, 14, 8), (3, 11, 7)] {
        let mut g = Graph::new(c);
        let input = tied_tensor(&mut rng, Shape { c, h, w });
        let pooled = g.tensor(c, DType::F32);
        let indices = g.tensor(c, DType::U32);
        g.ops.push(Op::MaxPool {
            input: 0,
            output: pooled,
            indices,
        });
        g.output = pooled;
        let (want, want_idx) = twin::maxpool(&input);
        let gpu = gpu();
        let engine = enet_wgpu::Engine::with_precision(
            gpu,
            &g,
            Default::default(),
            enet_wgpu::kernels::Precision::F32,
        )
        .unwrap();
        let plan = engine.plan((w, h), (w, h)).unwrap();
        plan.write_tensor(0, &input.data);
        plan.submit_ops_only();
        let got = pollster::block_on(plan.read_tensor(pooled)).unwrap();
        let got_idx = pollster::block_on(plan.read_indices(indices)).unwrap();
        assert_eq!(got, want.data, "pooled values {c}x{h}x{w}");
        assert_eq!(got_idx, want_idx, "indices {c}x{h}x{w}");
        // The CPU twin itself: ties pick the first maximum in row-major order.
        let windows = want_idx.len();
        let tied = (0..windows)
            .filter(|&i| {
                let (ch, rest) = (
                    i / (want.shape.h * want.shape.w),
                    i % (want.shape.h * want.shape.w),
                );
                let (oy, ox) = (rest / want.shape.w, rest % want.shape.w);
                let v = |y: usize, x: usize| input.data[(ch * h + y) * w + x];
                let first = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .into_iter()
                    .map(|(dy, dx)| (oy * 2 + dy, ox * 2 + dx))
                    .find(|&(y, x)| v(y, x) == want.data[i])
                    .unwrap();
                assert_eq!(
                    want_idx[i] as usize,
                    first.0 * w + first.1,
                    "first maximum wins"
                );
                [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .filter(|(dy, dx)| v(oy * 2 + dy, ox * 2 + dx) == want.data[i])
                    .count()
                    > 1
            })
            .count();
        assert!(
            tied > windows / 4,
            "the test input should hold many ties ({tied} of {windows})"
        );
    }
}

#[test]
fn max_unpool() {
    let mut rng = SplitMix(31);
    for (c, w, h) in [(4, 12, 6), (3, 9, 7)] {
        let mut g = Graph::new(c);
        let input = tied_tensor(&mut rng, Shape { c, h, w });
        let pooled = g.tensor(c, DType::F32);
        let indices = g.tensor(c, DType::U32);
        let out = g.tensor(c, DType::F32);
        g.ops.push(Op::MaxPool {
            input: 0,
            output: pooled,
            indices,
        });
        g.ops.push(Op::Unpool {
            input: pooled,
            indices,
            like: 0,
            output: out,
        });
        g.output = out;
        let want = twin::run(&g, input.clone());
        assert_eq!(want.shape, Shape { c, h, w });
        let got = run_gpu(&g, &input, &[out]);
        assert_eq!(got[0], want.data, "unpool {c}x{h}x{w}");
        // Exactly one non-zero-capable slot per window, the rest zero.
        let nonzero = want.data.iter().filter(|v| **v != 0.0).count();
        assert!(nonzero <= c * (h / 2) * (w / 2));
    }
}

/// Preprocessing (resize + normalise) and argmax through a real frame: the network is a
/// 1x1 identity conv, so the logits are the preprocessed input itself.
#[test]
fn preprocess_resize_normalise_and_argmax() {
    let mut rng = SplitMix(40);
    let (sw, sh) = (23, 13);
    let (w, h) = (16, 24);
    let mut rgba: Vec<u8> = (0..sw * sh * 4)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    // Grey pixels make all three "logits" equal: argmax must pick class 0.
    for px in rgba.chunks_exact_mut(4).step_by(5) {
        px[1] = px[0];
        px[2] = px[0];
    }
    let norm = enet_wgpu::model::Normalization {
        mean: [0.0, 0.0, 0.0],
        std: [1.0, 1.0, 1.0],
    };
    let mut g = Graph::new(3);
    let out = g.tensor(3, DType::F32);
    let mut weight = vec![0.0; 9];
    for i in 0..3 {
        weight[i * 3 + i] = 1.0;
    }
    g.ops.push(Op::Conv {
        input: 0,
        output: out,
        conv: Conv {
            cin: 3,
            cout: 3,
            geom: ConvGeom::new(1, 1),
            weight,
            bias: vec![0.0; 3],
            slope: vec![1.0; 3],
        },
        residual: None,
    });
    g.output = out;
    for (nw, nh, norm) in [
        (w, h, norm),
        (sw, sh, norm),
        (
            w,
            h,
            enet_wgpu::model::Normalization {
                mean: [0.4, 0.5, 0.6],
                std: [0.2, 0.25, 0.3],
            },
        ),
    ] {
        let engine =
            enet_wgpu::Engine::with_precision(gpu(), &g, norm, enet_wgpu::kernels::Precision::F32)
                .unwrap();
        let plan = engine.plan((nw, nh), (sw, sh)).unwrap();
        plan.submit_frame(
            &rgba,
            enet_wgpu::runtime::FrameOptions {
                read_classes: true,
                ..Default::default()
            },
        )
        .unwrap();
        let classes = pollster::block_on(plan.read_classes()).unwrap();
        let logits = pollster::block_on(plan.read_tensor(out)).unwrap();
        let want = twin::preprocess(&rgba, sw, sh, nw, nh, &norm);
        assert_close(
            &logits,
            &want.data,
            1e-5,
            &format!("preprocess {sw}x{sh} -> {nw}x{nh}"),
        );
        let want_classes: Vec<u8> = twin::argmax(&Tensor {
            shape: want.shape,
            data: logits.clone(),
        })
        .into_iter()
        .map(|c| c as u8)
        .collect();
        assert_eq!(classes, want_classes, "argmax {nw}x{nh}");
        if (nw, nh) == (sw, sh) {
            // Same size: exactly the source bytes / 255.
            for (i, px) in rgba.chunks_exact(4).enumerate() {
                assert_eq!(want.data[i], px[0] as f32 / 255.0);
            }
            let ties = rgba
                .chunks_exact(4)
                .filter(|p| p[0] == p[1] && p[1] == p[2])
                .count();
            assert!(ties > 0);
        }
    }
}

/// The overlay render pass against its twin: a frame resized into a network of another
/// size, the class map composited back at the frame's size and at canvas sizes, in each view.
#[test]
fn overlay_render_pass() {
    let gpu = gpu();
    let mut rng = SplitMix(50);
    let (sw, sh) = (37, 21);
    let (nw, nh) = (24, 16);
    let rgba: Vec<u8> = (0..sw * sh * 4)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    // Logits R, G, B and two mixes make a varied class map.
    let mut g = Graph::new(3);
    let out = g.tensor(5, DType::F32);
    g.ops.push(Op::Conv {
        input: 0,
        output: out,
        conv: Conv {
            cin: 3,
            cout: 5,
            geom: ConvGeom::new(1, 1),
            weight: vec![
                1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.6, 0.6, 0.0, 0.0, 0.6, 0.6,
            ],
            bias: vec![0.0; 5],
            slope: vec![1.0; 5],
        },
        residual: None,
    });
    g.output = out;
    let engine = enet_wgpu::Engine::with_precision(
        gpu,
        &g,
        Default::default(),
        enet_wgpu::kernels::Precision::F32,
    )
    .unwrap();
    let plan = engine.plan((nw, nh), (sw, sh)).unwrap();
    let classes: Vec<enet_wgpu::model::ClassInfo> = (0..5)
        .map(|i| enet_wgpu::model::ClassInfo {
            name: format!("c{i}"),
            color: [(i * 60) as u8, (255 - i * 50) as u8, (i * 17 + 3) as u8],
        })
        .collect();
    plan.submit_frame(
        &rgba,
        enet_wgpu::runtime::FrameOptions {
            read_classes: true,
            ..Default::default()
        },
    )
    .unwrap();
    let class_map = pollster::block_on(plan.read_classes()).unwrap();
    let void = class_map[0] as usize;
    assert!(
        class_map.iter().any(|&c| c as usize != void),
        "varied classes"
    );
    let mut overlay =
        enet_wgpu::runtime::Overlay::new(&gpu.device, wgpu::TextureFormat::Rgba8Unorm);
    overlay.set_classes(&gpu.queue, &classes, Some(void));
    // The class probabilities behind the map (the smoothing pass started afresh: the softmax).
    let smoother = enet_wgpu::runtime::Smoother::new(&gpu.device);
    let smooth = smoother.bind(&gpu.device, &plan);
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    smoother.encode(&gpu.queue, &mut encoder, &smooth, 0.0);
    gpu.queue.submit([encoder.finish()]);
    let binding = overlay.bind(
        &gpu.device,
        &plan,
        plan.class_buffer(),
        smooth.prob_buffer(),
    );
    let palette: Vec<[u8; 3]> = classes.iter().map(|c| c.color).collect();
    // The frame's own size (the CLI's picture), then scaled canvases in the other views,
    // mirrored, with a class hidden: each against the twin.
    let cases = [
        ((sw, sh), View::Overlay, false, None, 1),
        ((2 * sw + 1, 3 * sh), View::SideBySide, true, None, 3),
        ((sw * 3 / 2, sh / 2), View::Mask, false, Some(2), 0),
        ((50, 40), View::Overlay, true, Some(1), 3),
    ];
    for ((tw, th), view, mirror, hide, tolerance) in cases {
        let mut hidden = vec![false; classes.len()];
        for c in 0..classes.len() {
            overlay.set_class_visible(&gpu.queue, c, Some(c) != hide);
        }
        if let Some(h) = hide {
            hidden[h] = true;
        }
        let opts = DrawOptions {
            alpha: 0.6,
            view,
            mirror,
            upscale: Upscale::Nearest,
        };
        let got = render(gpu, &overlay, &binding, (tw, th), opts);
        let want = twin::compose(
            &rgba,
            sw,
            sh,
            &class_map,
            nw,
            nh,
            &twin::Compose {
                palette: &palette,
                hidden: &hidden,
                void: Some(void),
                alpha: 0.6,
                view,
                mirror,
            },
            tw,
            th,
        );
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(
            worst <= tolerance,
            "{tw}x{th} {view:?} mirror {mirror}: overlay differs from its twin by {worst} levels"
        );
    }
    // The page's "which class is here" picks the pixel the shader coloured.
    let (tw, th) = (2 * sw + 1, 3 * sh);
    let opts = DrawOptions {
        alpha: 1.0,
        view: View::SideBySide,
        mirror: true,
        upscale: Upscale::Nearest,
    };
    for c in 0..classes.len() {
        overlay.set_class_visible(&gpu.queue, c, c != void);
    }
    let got = render(gpu, &overlay, &binding, (tw, th), opts);
    for (x, y) in [
        (sw + 3, 5),
        (tw - 2, th - 1),
        (2 * sw - 1, 0),
        (sw + sw / 2, th / 2),
    ] {
        let (u, v) = ((x as f64 + 0.5) / tw as f64, (y as f64 + 0.5) / th as f64);
        let (cx, cy) =
            twin::class_pixel_at(u, v, (tw, th), (nw, nh), View::SideBySide, true).unwrap();
        let c = class_map[cy * nw + cx] as usize;
        let i = (y * tw + x) * 4;
        let want = if c == void { [0, 0, 0] } else { palette[c] };
        assert_eq!(&got[i..i + 3], &want[..], "class under ({x}, {y})");
    }
    assert_eq!(
        twin::class_pixel_at(0.9999, 0.5, (tw, th), (nw, nh), View::SideBySide, false),
        None,
        "the odd column shows nothing"
    );

    // Bilinear and edge-aware: classes decided at the target's own resolution from the
    // probabilities (upscale_common.wgsl), in every view; the twin is given the engine's
    // logits, so only near-ties may flip (float rounding of exp and division).
    let logits = pollster::block_on(plan.read_tensor(plan.output())).unwrap();
    let probs = upscale::softmax(&logits, 5, nw * nh);
    for c in 0..classes.len() {
        overlay.set_class_visible(&gpu.queue, c, true);
    }
    for mode in [Upscale::Bilinear, Upscale::Edge] {
        for ((tw, th), view, mirror) in [
            ((sw, sh), View::Mask, false),
            ((2 * sw + 1, 3 * sh), View::SideBySide, true),
            ((sw * 3, sh * 2), View::Overlay, false),
        ] {
            let opts = DrawOptions {
                alpha: 0.6,
                view,
                mirror,
                upscale: mode,
            };
            let got = render(gpu, &overlay, &binding, (tw, th), opts);
            let (_, pw, _) = twin::view_column(0, tw, view, mirror);
            let sizes = upscale::Sizes {
                net: (nw, nh),
                src: (sw, sh),
                out: (pw, th),
                channels: 5,
            };
            let up = upscale::upscale(&probs, &rgba, sizes, mode);
            let compose = |classes: &[u8], (mw, mh): (usize, usize)| {
                let opts = twin::Compose {
                    palette: &palette,
                    hidden: &[],
                    void: Some(void),
                    alpha: 0.6,
                    view,
                    mirror,
                };
                twin::compose(&rgba, sw, sh, classes, mw, mh, &opts, tw, th)
            };
            let want = compose(&up, (pw, th));
            let off = got
                .chunks_exact(4)
                .zip(want.chunks_exact(4))
                .filter(|(a, b)| {
                    a.iter()
                        .zip(*b)
                        .any(|(x, y)| (*x as i32 - *y as i32).abs() > 3)
                })
                .count();
            assert!(
                off * 200 <= tw * th,
                "{mode} {tw}x{th} {view:?}: {off} pixels differ from the twin"
            );
            // Upscaled classes differ from the nearest network pixel's somewhere.
            let nearest = compose(&class_map, (nw, nh));
            assert_ne!(want, nearest, "{mode} {tw}x{th}");
        }
    }
}

/// Draws `binding` into an RGBA8 target of `size` and reads it back, tightly packed.
fn render(
    gpu: &enet_wgpu::Gpu,
    overlay: &enet_wgpu::runtime::Overlay,
    binding: &enet_wgpu::runtime::OverlayBinding,
    size: (usize, usize),
    opts: DrawOptions,
) -> Vec<u8> {
    let (tw, th) = size;
    let target = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: tw as u32,
            height: th as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let row = (tw * 4).next_multiple_of(256);
    let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (row * th) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    overlay.encode(
        &gpu.queue,
        &mut encoder,
        &target.create_view(&Default::default()),
        (tw as u32, th as u32),
        binding,
        opts,
    );
    encoder.copy_texture_to_buffer(
        target.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row as u32),
                rows_per_image: None,
            },
        },
        target.size(),
    );
    gpu.queue.submit([encoder.finish()]);
    let raw = pollster::block_on(gpu.read_buffer(&readback)).unwrap();
    raw.chunks(row).flat_map(|r| r[..tw * 4].to_vec()).collect()
}

/// Temporal smoothing after a whole frame, three frames running, against its twin: the
/// smoothed class map, and that it differs from the frame's own argmax where pixels are
/// uncertain (with strength 0 it must not).
#[test]
fn temporal_smoothing_matches_its_twin() {
    use enet_wgpu::model::{Layout, Normalization};
    use enet_wgpu::runtime::{Engine, FrameOptions, Smoother};
    let gpu = gpu();
    let graph = enet_wgpu::model::weights::synthetic_graph(Layout::Paper, 12);
    let engine = Engine::with_precision(
        gpu,
        &graph,
        Normalization::default(),
        enet_wgpu::kernels::Precision::F32,
    )
    .unwrap();
    let (w, h) = (40, 24);
    let plan = engine.plan((w, h), (w, h)).unwrap();
    let smoother = Smoother::new(&gpu.device);
    let mut rng = SplitMix(11);
    let base: Vec<u8> = (0..w * h * 4)
        .map(|_| rng.uniform(0.0, 255.0) as u8)
        .collect();
    for strength in [0.9f32, 0.0] {
        let binding = smoother.bind(&gpu.device, &plan);
        let mut probs = vec![0f32; 12 * w * h];
        let mut changed = 0;
        for frame in 0..3 {
            // The same picture with fresh noise, as a still camera sees it.
            let rgba: Vec<u8> = base
                .iter()
                .map(|&v| (v as f32 + rng.uniform(-8.0, 8.0)).clamp(0.0, 255.0) as u8)
                .collect();
            plan.upload_rgba(&rgba).unwrap();
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            plan.encode(&mut enc, FrameOptions::default());
            smoother.encode(&gpu.queue, &mut enc, &binding, strength);
            plan.encode_class_readback_from(&mut enc, binding.class_buffer());
            gpu.queue.submit([enc.finish()]);
            let got = pollster::block_on(plan.read_classes()).unwrap();
            let logits = Tensor {
                shape: plan.shape(plan.output()),
                data: pollster::block_on(plan.read_tensor(plan.output())).unwrap(),
            };
            let raw = twin::argmax(&logits);
            let want = twin::smooth(&logits, &mut probs, strength, frame == 0);
            let same = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| **a as u32 == **b)
                .count();
            assert!(
                same as f64 >= 0.999 * (w * h) as f64,
                "strength {strength}, frame {frame}: {same} of {} pixels agree with the twin",
                w * h
            );
            changed += want.iter().zip(&raw).filter(|(a, b)| a != b).count();
        }
        eprintln!(
            "strength {strength}: {changed} smoothed pixels differ from the frame's own class"
        );
        if strength > 0.0 {
            assert!(changed > 0, "smoothing changed nothing");
        } else {
            assert_eq!(changed, 0, "strength 0 must follow every frame");
        }
    }
}

/// The refinement (`shaders/refine.wgsl`: colours, the mean-field iterations, the hold)
/// against its twin on a frame's own probabilities, with the frame larger than the network
/// (each colour a footprint's mean) and smaller (one source pixel per network pixel), over
/// two frames of a noisy camera held as the page holds them: the refined probabilities within
/// float rounding, that the refinement changes some pixels' class, and that the second frame
/// keeps some of the first's.
#[test]
fn refinement_matches_its_twin() {
    use enet_wgpu::kernels::refine;
    use enet_wgpu::model::{Layout, Normalization};
    use enet_wgpu::runtime::{Engine, FrameOptions, Refiner, Smoother};
    const KEEP: f32 = 0.7;
    let gpu = gpu();
    let graph = enet_wgpu::model::weights::synthetic_graph(Layout::Paper, 12);
    let engine = Engine::with_precision(
        gpu,
        &graph,
        Normalization::default(),
        enet_wgpu::kernels::Precision::F32,
    )
    .unwrap();
    let (smoother, refiner) = (Smoother::new(&gpu.device), Refiner::new(&gpu.device));
    let mut rng = SplitMix(5);
    for ((w, h), net) in [((83, 61), (40, 24)), ((24, 16), (40, 24))] {
        let plan = engine.plan(net, (w, h)).unwrap();
        let smooth = smoother.bind(&gpu.device, &plan);
        let bound = refiner.bind(&gpu.device, &gpu.queue, &plan, smooth.prob_buffer());
        let bytes = bound.prob_buffer().size();
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let hw = net.0 * net.1;
        let sizes = upscale::Sizes {
            net,
            src: (w, h),
            out: net,
            channels: 12,
        };
        let mut held = refine::Held::default();
        for frame in 0..2 {
            // Flat patches with an edge or two, as pictures have, and fresh noise.
            let rgba: Vec<u8> = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    let v =
                        if 3 * x + 2 * y < 2 * w { 40.0 } else { 200.0 } + rng.uniform(-6.0, 6.0);
                    [v as u8, (255.0 - v) as u8, 128, 255]
                })
                .collect();
            plan.upload_rgba(&rgba).unwrap();
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            plan.encode(&mut enc, FrameOptions::default());
            smoother.encode(&gpu.queue, &mut enc, &smooth, 0.0);
            refiner.encode(&gpu.queue, &mut enc, &bound, KEEP);
            enc.copy_buffer_to_buffer(bound.prob_buffer(), 0, &readback, 0, bytes);
            gpu.queue.submit([enc.finish()]);
            let raw = pollster::block_on(gpu.read_buffer(&readback)).unwrap();
            let got: Vec<f32> = bytemuck::cast_slice(&raw).to_vec();
            let logits = pollster::block_on(plan.read_tensor(plan.output())).unwrap();
            let probs = upscale::softmax(&logits, 12, hw);
            let want = held.refine(&probs, &rgba, sizes, KEEP);
            let alone = refine::refine(&probs, &rgba, sizes);
            let worst = got[..want.len()]
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let class = |q: &[f32], i: usize| {
                (0..12)
                    .max_by(|&a, &b| q[a * hw + i].total_cmp(&q[b * hw + i]))
                    .unwrap()
            };
            let moved = (0..hw)
                .filter(|&i| class(&want, i) != class(&probs, i))
                .count();
            let kept = want
                .iter()
                .zip(&alone)
                .filter(|(a, b)| (*a - *b).abs() > 1e-3)
                .count();
            eprintln!(
                "{w}x{h} -> {net:?}, frame {frame}: max |diff| {worst:.2e}, {moved} of {hw} pixels change class, {kept} values held from the last frame"
            );
            assert!(worst < 1e-3, "{w}x{h}, frame {frame}: max |diff| {worst}");
            assert!(moved > 0, "the refinement changed no class");
            if frame == 0 {
                assert_eq!(kept, 0, "a first frame must keep nothing");
            } else {
                assert!(kept > 0, "the second frame held nothing of the first");
            }
        }
    }
}
