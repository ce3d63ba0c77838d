//! The CPU engine against the kernels' plain twins: every layout, odd sizes, each
//! instruction set and thread count it can use, and bad input named.

use enet_wgpu::cpu::{CpuEngine, CpuSegmenter, Isa};
use enet_wgpu::kernels::twin;
use enet_wgpu::model::weights::{SplitMix, synthetic_file};
use enet_wgpu::model::{Layout, Model};

fn random_rgba(rng: &mut SplitMix, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 4)
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect()
}

fn builtin() -> Model {
    Model::from_safetensors(enet_wgpu::assets::default_model().expect("embedded model"))
        .expect("the shipped model loads")
}

/// Max |difference| and the share of pixels whose argmax agrees.
fn compare(got: &[f32], want: &[f32], classes: usize) -> (f32, f64) {
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let hw = got.len() / classes;
    let arg = |v: &[f32], i: usize| {
        (0..classes)
            .max_by(|&a, &b| v[a * hw + i].total_cmp(&v[b * hw + i]).then(b.cmp(&a)))
            .unwrap()
    };
    let same = (0..hw).filter(|&i| arg(got, i) == arg(want, i)).count();
    (max, same as f64 / hw as f64)
}

#[test]
fn cpu_engine_matches_the_twins_for_every_layout_size_and_isa() {
    let mut rng = SplitMix(7);
    let mut isas = vec![Isa::Portable];
    if Isa::detect() != Isa::Portable {
        isas.push(Isa::detect());
    }
    for layout in Layout::ALL {
        let model = Model::from_safetensors(&synthetic_file(layout, 12, 3)).unwrap();
        // Odd sizes: widths not a multiple of the kernel's 6 pixels, odd pooled sides.
        for (w, h, sw, sh) in [(64, 48, 64, 48), (72, 40, 101, 67), (40, 88, 33, 90)] {
            let rgba = random_rgba(&mut rng, sw, sh);
            let input = twin::preprocess(&rgba, sw, sh, w, h, &model.normalization);
            let want = twin::run(&model.graph, input);
            for &isa in &isas {
                for threads in [1, 2] {
                    let engine =
                        CpuEngine::with_isa(&model.graph, model.normalization, Some(threads), isa)
                            .unwrap();
                    assert_eq!(engine.isa(), isa);
                    let mut plan = engine.plan((w, h), (sw, sh)).unwrap();
                    engine.run(&mut plan, &rgba).unwrap();
                    let got = plan.logits(&model.graph);
                    let (max, same) = compare(&got, &want.data, 12);
                    let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    eprintln!(
                        "{layout} {w}x{h} from {sw}x{sh}, {} {threads}t: max |diff| {max:.2e} (logits up to {scale:.1}), argmax {same:.5}",
                        isa.name()
                    );
                    assert!(max <= 1e-4 * scale.max(1.0), "{layout} {w}x{h}: {max}");
                    assert!(same >= 0.999, "{layout} {w}x{h}: {same}");
                    // The classes are the argmax of these logits.
                    let classes: Vec<u8> = twin::argmax(&twin::Tensor {
                        shape: want.shape,
                        data: got.clone(),
                    })
                    .into_iter()
                    .map(|c| c as u8)
                    .collect();
                    assert_eq!(plan.classes(), &classes[..]);
                }
            }
        }
    }
}

#[test]
fn a_second_frame_gives_the_same_answer() {
    // Buffers are shared between tensors: nothing of one frame may leak into the next.
    let model = builtin();
    let mut rng = SplitMix(11);
    let a = random_rgba(&mut rng, 96, 64);
    let b = random_rgba(&mut rng, 96, 64);
    let mut seg = CpuSegmenter::new(&model, Some(2)).unwrap();
    let first = seg.logits(&a, 96, 64, (96, 64)).unwrap();
    seg.logits(&b, 96, 64, (96, 64)).unwrap();
    assert_eq!(seg.logits(&a, 96, 64, (96, 64)).unwrap(), first);
}

#[test]
fn bad_input_is_named() {
    let model = builtin();
    let mut seg = CpuSegmenter::new(&model, Some(1)).unwrap();
    let e = seg
        .segment(&[0; 10], 4, 4, (64, 48))
        .unwrap_err()
        .to_string();
    assert!(e.contains("10 bytes") && e.contains("4x4"), "{e}");
    let e = seg
        .segment(&[0; 16 * 16 * 4], 16, 16, (4, 4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("4x4") && e.contains("too small"), "{e}");
    let e = seg
        .segment_to(
            &[0; 16 * 16 * 4],
            (16, 16),
            (16, 16),
            (0, 5),
            Default::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one pixel"), "{e}");
    // Still usable afterwards.
    assert!(seg.segment(&[0; 16 * 16 * 4], 16, 16, (16, 16)).is_ok());
    let e = CpuEngine::new(&model.graph, model.normalization, Some(0))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("thread"), "{e}");
}

#[test]
fn fast_exp_is_exp() {
    let mut worst = 0.0f32;
    let mut x = -87.0f32;
    while x < 88.0 {
        let (got, want) = (enet_wgpu::cpu::ops::exp(x), x.exp());
        worst = worst.max(((got - want) / want).abs());
        x += 0.0137;
    }
    assert!(worst < 5e-7, "worst relative error {worst}");
    assert_eq!(enet_wgpu::cpu::ops::exp(0.0), 1.0);
    assert!(enet_wgpu::cpu::ops::exp(-1000.0) >= 0.0);
}

#[test]
fn smoothing_matches_its_twin() {
    // The CPU path's smoothing against the twin of smooth.wgsl, over three frames.
    let model = builtin();
    let mut rng = SplitMix(3);
    let (w, h) = (64, 48);
    let mut seg = CpuSegmenter::new(&model, Some(1)).unwrap();
    let c = model.num_classes();
    let mut twin_probs = vec![0.0; c * w * h];
    let mut probs = vec![0.0; c * w * h];
    let mut shown = vec![0u8; w * h];
    for k in 0..3 {
        let rgba = random_rgba(&mut rng, w, h);
        let planar = seg.logits(&rgba, w, h, (w, h)).unwrap();
        let t = twin::Tensor {
            shape: enet_wgpu::model::Shape { c, h, w },
            data: planar.clone(),
        };
        let want = twin::smooth(&t, &mut twin_probs, 0.7, k == 0);
        let nhwc: Vec<f32> = (0..w * h)
            .flat_map(|p| (0..c).map(move |ch| (p, ch)))
            .map(|(p, ch)| planar[ch * w * h + p])
            .collect();
        enet_wgpu::cpu::ops::smooth(&nhwc, c, &mut probs, 0.7, k == 0, &mut shown);
        let same = shown
            .iter()
            .zip(&want)
            .filter(|(a, b)| **a as u32 == **b)
            .count();
        assert!(same as f64 >= 0.999 * (w * h) as f64, "frame {k}: {same}");
        let worst = (0..w * h)
            .flat_map(|p| (0..c).map(move |ch| (p, ch)))
            .map(|(p, ch)| (probs[p * c + ch] - twin_probs[ch * w * h + p]).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "frame {k}: probabilities differ by {worst}");
    }
}
