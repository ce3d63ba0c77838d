//! The whole network, both layouts, GPU against the CPU twin on synthetic weights at small,
//! non-square sizes.

mod common;

use common::*;
use enet_wgpu::Segmenter;
use enet_wgpu::kernels::twin;
use enet_wgpu::model::weights::{SplitMix, synthetic_file};
use enet_wgpu::model::{Layout, Model};

fn check(layout: Layout, classes: usize, (w, h): (usize, usize), seed: u64) {
    let model = Model::from_safetensors(&synthetic_file(layout, classes, seed)).unwrap();
    let mut rng = SplitMix(seed);
    let rgba: Vec<u8> = (0..w * h * 4)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    let mut seg =
        Segmenter::with_precision(gpu(), &model, enet_wgpu::kernels::Precision::F32).unwrap();
    let got = pollster::block_on(seg.logits(&rgba, w, h, (w, h))).unwrap();
    let want = twin::run(
        &model.graph,
        twin::preprocess(&rgba, w, h, w, h, &model.normalization),
    );
    assert_eq!(want.shape.c, classes);
    assert_close(
        &got,
        &want.data,
        2e-4,
        &format!("{layout} {classes} classes {w}x{h}"),
    );
    let map = pollster::block_on(seg.segment(&rgba, w, h, (w, h))).unwrap();
    let want_map = twin::argmax(&want);
    let same = map
        .data
        .iter()
        .zip(&want_map)
        .filter(|(a, b)| **a as u32 == **b)
        .count();
    assert!(
        same as f64 >= 0.999 * (w * h) as f64,
        "{layout}: argmax agreement {same} of {}",
        w * h
    );
}

#[test]
fn paper_layout_gpu_matches_cpu_twin() {
    check(Layout::Paper, 12, (64, 40), 1);
}

#[test]
fn pytorch_enet_layout_gpu_matches_cpu_twin() {
    check(Layout::PytorchEnet, 12, (48, 72), 2);
}

#[test]
fn any_class_count() {
    check(Layout::Paper, 5, (32, 24), 3);
    check(Layout::PytorchEnet, 19, (24, 16), 4);
}

#[test]
fn plans_are_reused_and_resizing_works() {
    let model = Model::from_safetensors(&synthetic_file(Layout::Paper, 12, 5)).unwrap();
    let mut seg =
        Segmenter::with_precision(gpu(), &model, enet_wgpu::kernels::Precision::F32).unwrap();
    let rgba = vec![128u8; 37 * 29 * 4];
    let a = pollster::block_on(seg.segment(&rgba, 37, 29, (40, 32))).unwrap();
    let b = pollster::block_on(seg.segment(&rgba, 37, 29, (40, 32))).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.width, a.height), (40, 32));
    let err = pollster::block_on(seg.segment(&rgba[1..], 37, 29, (40, 32))).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn gpu_errors_while_making_resources_come_back_as_errors() {
    let gpu = gpu();
    let buffer = |size| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    // An over-limit buffer is refused as a lack of memory would be: inside the scopes, the
    // error comes back to the caller instead of the device's panicking handler.
    let too_big = gpu.device.limits().max_buffer_size.saturating_add(256);
    let mut refused = gpu.checked(|| Ok(buffer(too_big))).unwrap();
    match refused.poll() {
        std::task::Poll::Ready(Err(wgpu::Error::Validation { .. })) => {}
        other => panic!("expected a validation error, got {other:?}"),
    }
    let mut fine = gpu.checked(|| Ok(buffer(256))).unwrap();
    assert!(pollster::block_on(fine.wait()).is_ok());
    // Errors of `make` itself pass through, with the scopes closed.
    let failed = gpu.checked(|| -> Result<(), _> { Err(enet_wgpu::EngineError::NoAdapter) });
    assert!(failed.is_err());
    let mut after = gpu.checked(|| Ok(buffer(256))).unwrap();
    assert!(matches!(after.poll(), std::task::Poll::Ready(Ok(()))));
}
