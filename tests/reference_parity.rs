//! The whole network on real trained weights (the independent PyTorch-ENet checkpoint in
//! ../shared/reference) against PyTorch's outputs for the same weights and pixels.
//!
//! `tests/fixtures/peer-enet-pytorch.safetensors` holds PyTorch's logits and argmax, written
//! by `scripts/pytorch_fixture.py` from these weights (the outputs file once shared beside
//! them did not come from these weights and is not used).

mod common;

use common::*;
use enet_wgpu::Segmenter;
use enet_wgpu::model::Layout;
use enet_wgpu::model::import::{self, ImportOptions};
use safetensors::SafeTensors;

fn reference_model() -> enet_wgpu::Model {
    let bytes = std::fs::read(reference_dir().join("peer-enet-camvid.safetensors")).unwrap();
    let (_, model) = import::import(&bytes, ImportOptions::camvid(Layout::PytorchEnet))
        .expect("the reference checkpoint imports");
    model
}

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/peer-enet-pytorch.safetensors"
    ))
    .unwrap()
}

fn check_logits(got: &[f32], what: &str) {
    let diffs = logit_diffs(&fixture(), got, (12, 360, 480));
    let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
    let over = diffs.iter().filter(|&&d| d > 1e-3).count();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    eprintln!(
        "{what}: mean |logit diff| {mean:.3e}, max {max:.3e}; {over} of {} logits differ by more than 1e-3",
        diffs.len()
    );
    assert!(mean <= 1e-4, "{what}: mean |logit diff| {mean}");
    assert!(
        over as f64 <= 0.001 * diffs.len() as f64,
        "{what}: {over} logits differ by more than 1e-3"
    );
}

#[test]
fn gpu_logits_match_pytorch_on_the_first_val_frame() {
    let model = reference_model();
    let mut seg =
        Segmenter::with_precision(gpu(), &model, enet_wgpu::kernels::Precision::F32).unwrap();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let got = pollster::block_on(seg.logits(&rgba, w, h, (w, h))).unwrap();
    check_logits(&got, "GPU");
}

#[test]
fn cpu_twin_logits_match_pytorch_on_the_first_val_frame() {
    let model = reference_model();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let input = enet_wgpu::kernels::twin::preprocess(&rgba, w, h, w, h, &model.normalization);
    let got = enet_wgpu::kernels::twin::run(&model.graph, input);
    check_logits(&got.data, "CPU twin");
}

#[test]
fn cpu_engine_logits_match_pytorch_on_the_first_val_frame() {
    let model = reference_model();
    let mut seg = enet_wgpu::cpu::CpuSegmenter::new(&model, None).unwrap();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let got = seg.logits(&rgba, w, h, (w, h)).unwrap();
    check_logits(&got, "CPU engine");
    // And the classes of three frames, as the GPU's below.
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let want_all = st.tensor("argmax").unwrap();
    for (i, path) in val_frames().iter().enumerate().take(3) {
        let (rgba, w, h) = load_png_rgba(path);
        let map = seg.segment(&rgba, w, h, (w, h)).unwrap();
        let n = w * h;
        let want = &want_all.data()[i * n..(i + 1) * n];
        let agree = map.data.iter().zip(want).filter(|(x, y)| x == y).count() as f64 / n as f64;
        eprintln!("CPU engine vs PyTorch argmax agreement {agree:.5}");
        assert!(agree >= 0.999, "{}: agreement {agree}", path.display());
    }
}

#[test]
fn argmax_matches_pytorch_on_three_val_frames() {
    use enet_wgpu::kernels::Precision;
    let model = reference_model();
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let want_all = st.tensor("argmax").unwrap();
    // f32 as PyTorch computes; f16 storage (where the device has it) within half a percent.
    let mut precisions = vec![(Precision::F32, 0.999)];
    if gpu().has_f16() {
        precisions.push((Precision::F16, 0.995));
    }
    for (precision, min) in precisions {
        let mut seg = Segmenter::with_precision(gpu(), &model, precision).unwrap();
        for (i, path) in val_frames().iter().enumerate().take(3) {
            let (rgba, w, h) = load_png_rgba(path);
            let map = pollster::block_on(seg.segment(&rgba, w, h, (w, h))).unwrap();
            let n = w * h;
            let want = &want_all.data()[i * n..(i + 1) * n];
            let agree = map.data.iter().zip(want).filter(|(x, y)| x == y).count() as f64 / n as f64;
            eprintln!(
                "{} ({precision}): engine vs PyTorch argmax agreement {agree:.5}",
                path.file_name().unwrap().to_string_lossy()
            );
            assert!(
                agree >= min,
                "{} ({precision}): agreement {agree}",
                path.display()
            );
        }
    }
}
