//! The whole network on the independent PyTorch-ENet weights against PyTorch's own outputs.

mod common;

use common::*;
use enet_wgpu::model::import::{self, ImportOptions};
use enet_wgpu::model::weights::camvid_classes;
use enet_wgpu::model::{Layout, Normalization};
use enet_wgpu::Segmenter;
use safetensors::SafeTensors;

fn reference_model() -> enet_wgpu::Model {
    let bytes = std::fs::read(reference_dir().join("peer-enet-camvid.safetensors")).unwrap();
    let (_, model) = import::import(
        &bytes,
        ImportOptions {
            layout: Layout::PytorchEnet,
            classes: camvid_classes(),
            void_class: Some(11),
            normalization: Normalization::default(),
            provenance: None,
        },
    )
    .expect("the reference checkpoint imports");
    model
}

fn val_frames() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(reference_dir().join("val-decoded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v
}

#[test]
fn logits_match_pytorch_on_the_first_val_frame() {
    let model = reference_model();
    let mut seg = Segmenter::new(gpu(), &model).unwrap();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let got = pollster::block_on(seg.logits(&rgba, w, h, (w, h))).unwrap();
    let out_bytes = std::fs::read(reference_dir().join("peer-enet-camvid-val-outputs.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&out_bytes).unwrap();
    let view = st.tensor("logits_first2").unwrap();
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
    let want = &all[..got.len()];
    let diffs: Vec<f32> = got.iter().zip(want).map(|(a, b)| (a - b).abs()).collect();
    let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
    let over = diffs.iter().filter(|&&d| d > 1e-3).count();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    eprintln!(
        "first val frame: mean |diff| {mean:.3e}, max {max:.3e}, {over} of {} logits over 1e-3 ({:.4} %)",
        diffs.len(),
        100.0 * over as f64 / diffs.len() as f64
    );
    assert!(mean <= 1e-4, "mean |logit diff| {mean}");
    assert!(over as f64 <= 0.001 * diffs.len() as f64, "{over} logits differ by more than 1e-3");
}

#[test]
fn argmax_matches_pytorch_on_three_val_frames() {
    let model = reference_model();
    let mut seg = Segmenter::new(gpu(), &model).unwrap();
    let out_bytes = std::fs::read(reference_dir().join("peer-enet-camvid-val-outputs.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&out_bytes).unwrap();
    let argmax = st.tensor("argmax").unwrap();
    let frames = val_frames();
    for (i, path) in frames.iter().enumerate().take(3) {
        let (rgba, w, h) = load_png_rgba(path);
        let map = pollster::block_on(seg.segment(&rgba, w, h, (w, h))).unwrap();
        let want = &argmax.data()[i * w * h..(i + 1) * w * h];
        let same = map.data.iter().zip(want).filter(|(a, b)| a == b).count();
        let agree = same as f64 / (w * h) as f64;
        eprintln!("{}: argmax agreement {:.5}", path.display(), agree);
        assert!(agree >= 0.999, "{}: agreement {agree}", path.display());
    }
}

#[test]
fn cpu_twin_matches_pytorch_on_the_first_val_frame() {
    let model = reference_model();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let input = enet_wgpu::kernels::cpu::preprocess(&rgba, w, h, w, h, &model.normalization);
    let got = enet_wgpu::kernels::cpu::run(&model.graph, input);
    let out_bytes = std::fs::read(reference_dir().join("peer-enet-camvid-val-outputs.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&out_bytes).unwrap();
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("logits_first2").unwrap().data());
    let want = &all[..got.data.len()];
    let mean = got.data.iter().zip(want).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / want.len() as f64;
    eprintln!("cpu twin: mean |diff| {mean:.3e}");
    assert!(mean <= 1e-4, "mean |logit diff| {mean}");
}
