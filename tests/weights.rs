//! Every problem in a weights file is an error that names the tensor and what is wrong.

use enet_wgpu::model::weights::{
    self, Header, Normalization, RawTensor, camvid_classes, synthetic_file, synthetic_tensors,
};
use enet_wgpu::model::{Layout, Model, ModelError};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn header(layout: Layout) -> Header {
    Header {
        layout,
        classes: camvid_classes(),
        void_class: Some(11),
        normalization: Normalization::default(),
        provenance: None,
    }
}

/// A safetensors file of `tensors`, each encoded by `encode` as (dtype, little-endian bytes).
fn serialize(
    tensors: &[RawTensor],
    encode: impl Fn(&RawTensor) -> (Dtype, Vec<u8>),
    meta: Option<std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let encoded: Vec<(Dtype, Vec<u8>)> = tensors.iter().map(encode).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&encoded)
        .map(|(t, (d, b))| {
            (
                t.name.clone(),
                TensorView::new(*d, t.shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, meta).unwrap()
}

fn f32_le(t: &RawTensor) -> (Dtype, Vec<u8>) {
    (Dtype::F32, bytemuck::cast_slice(&t.data).to_vec())
}

fn load_err(bytes: &[u8]) -> (ModelError, String) {
    let e = Model::from_safetensors(bytes).expect_err("must be rejected");
    let msg = e.to_string();
    (e, msg)
}

fn with(layout: Layout, f: impl FnOnce(&mut Vec<RawTensor>)) -> Vec<u8> {
    let mut t = synthetic_tensors(layout, 12, 7);
    f(&mut t);
    weights::write(&header(layout), &t)
}

#[test]
fn valid_files_load_in_both_layouts_and_f16() {
    for layout in Layout::ALL {
        let m = Model::from_safetensors(&synthetic_file(layout, 12, 1)).unwrap();
        assert_eq!(m.layout, layout);
        assert_eq!(m.num_classes(), 12);
    }
    // F16 tensors are accepted and widened.
    let t = synthetic_tensors(Layout::Paper, 12, 2);
    let file = serialize(
        &t,
        |t| {
            (
                Dtype::F16,
                t.data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            )
        },
        Some(header(Layout::Paper).to_metadata()),
    );
    Model::from_safetensors(&file).unwrap();
}

#[test]
fn not_safetensors() {
    let (e, msg) = load_err(b"this is a text file, not weights");
    assert!(matches!(e, ModelError::NotSafetensors(_)), "{msg}");
    let (e, _) = load_err(&[]);
    assert!(matches!(e, ModelError::NotSafetensors(_)));
}

#[test]
fn truncated() {
    let full = synthetic_file(Layout::Paper, 12, 3);
    for cut in [4, 20, full.len() / 2, full.len() - 1] {
        let (e, msg) = load_err(&full[..cut]);
        assert!(
            matches!(e, ModelError::NotSafetensors(_)),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn missing_tensor() {
    let bytes = with(Layout::Paper, |t| {
        t.retain(|t| t.name != "bottleneck2_3.conv2.bn.running_var")
    });
    let (e, msg) = load_err(&bytes);
    assert_eq!(
        e,
        ModelError::Missing("bottleneck2_3.conv2.bn.running_var".into()),
        "{msg}"
    );
    assert!(msg.contains("bottleneck2_3.conv2.bn.running_var"));
}

#[test]
fn extra_tensor() {
    let bytes = with(Layout::PytorchEnet, |t| {
        t.push(RawTensor {
            name: "decoder.extra.weight".into(),
            shape: vec![2],
            data: vec![0.0, 1.0],
        })
    });
    let (e, msg) = load_err(&bytes);
    assert!(
        matches!(e, ModelError::Extra(ref n, _) if n == "decoder.extra.weight"),
        "{msg}"
    );
}

#[test]
fn misshaped_tensor() {
    let bytes = with(Layout::Paper, |t| {
        let x = t
            .iter_mut()
            .find(|t| t.name == "bottleneck1_2.conv.weight")
            .unwrap();
        x.shape = vec![16, 16, 1, 9];
    });
    let (e, msg) = load_err(&bytes);
    assert!(
        matches!(e, ModelError::Shape { ref tensor, ref got, ref want } if tensor == "bottleneck1_2.conv.weight" && got == &[16, 16, 1, 9] && want == &[16, 16, 3, 3]),
        "{msg}"
    );
    // A per-layer PReLU where the paper layout has one slope per channel.
    let bytes = with(Layout::Paper, |t| {
        let x = t
            .iter_mut()
            .find(|t| t.name == "initial.prelu.weight")
            .unwrap();
        x.shape = vec![1];
        x.data = vec![0.25];
    });
    let (_, msg) = load_err(&bytes);
    assert!(
        msg.contains("initial.prelu.weight") && msg.contains("[16]"),
        "{msg}"
    );
}

#[test]
fn wrong_dtype() {
    let t = synthetic_tensors(Layout::Paper, 12, 4);
    let file = serialize(
        &t,
        |t| match t.name.as_str() {
            "fullconv.bias" => (
                Dtype::F64,
                t.data
                    .iter()
                    .flat_map(|v| (*v as f64).to_le_bytes())
                    .collect(),
            ),
            _ => f32_le(t),
        },
        Some(header(Layout::Paper).to_metadata()),
    );
    let (e, msg) = load_err(&file);
    assert!(
        matches!(e, ModelError::DType { ref tensor, .. } if tensor == "fullconv.bias"),
        "{msg}"
    );
    assert!(msg.contains("F64"), "{msg}");
}

#[test]
fn nan_and_inf() {
    for (bad, name) in [
        (f32::NAN, "bottleneck3_5.proj.weight"),
        (f32::INFINITY, "bottleneck4_0.tconv.bn.bias"),
    ] {
        let bytes = with(Layout::PytorchEnet, |t| {
            t.iter_mut().find(|t| t.name == name).unwrap().data[3] = bad;
        });
        let (e, msg) = load_err(&bytes);
        assert!(
            matches!(e, ModelError::BadValue { ref tensor, .. } if tensor == name),
            "{msg}"
        );
        assert!(msg.contains("index 3"), "{msg}");
    }
}

#[test]
fn negative_variance() {
    let bytes = with(Layout::Paper, |t| {
        t.iter_mut()
            .find(|t| t.name == "initial.bn.running_var")
            .unwrap()
            .data[0] = -1.0;
    });
    let (_, msg) = load_err(&bytes);
    assert!(
        msg.contains("initial.bn.running_var") && msg.contains("negative"),
        "{msg}"
    );
}

#[test]
fn class_count_mismatch() {
    let t = synthetic_tensors(Layout::Paper, 12, 5);
    let mut h = header(Layout::Paper);
    h.classes.truncate(11);
    h.void_class = None;
    let (e, msg) = load_err(&weights::write(&h, &t));
    assert_eq!(
        e,
        ModelError::ClassCount {
            metadata: 11,
            weights: 12,
            tensor: "fullconv.weight".into()
        },
        "{msg}"
    );
}

#[test]
fn metadata_problems() {
    let t = synthetic_tensors(Layout::Paper, 12, 6);
    // No metadata at all (e.g. a raw PyTorch state dict).
    let raw = serialize(&t, f32_le, None);
    let (_, msg) = load_err(&raw);
    assert!(msg.contains("enet import"), "{msg}");
    // The other layout's names for these tensors.
    let mut h = header(Layout::PytorchEnet);
    let (_, msg) = load_err(&weights::write(&h, &t));
    assert!(
        msg.contains("shape") || msg.contains("missing") || msg.contains("extra"),
        "{msg}"
    );
    h.layout = Layout::Paper;
    h.normalization.std = [1.0, 0.0, 1.0];
    let (_, msg) = load_err(&weights::write(&h, &t));
    assert!(msg.contains("normalization"), "{msg}");
    let mut m = header(Layout::Paper).to_metadata();
    m.insert("layout".into(), "resnet".into());
    m.insert("format".into(), weights::FORMAT.into());
    let (_, msg) = load_err(&serialize(&t, f32_le, Some(m)));
    assert!(msg.contains("resnet"), "{msg}");
}

#[test]
fn pytorch_checkpoint_with_unknown_keys_is_refused_by_import() {
    use enet_wgpu::model::import::{ImportOptions, import};
    let views = vec![(
        "backbone.layer1.weight".to_string(),
        TensorView::new(Dtype::F32, vec![1], &[0, 0, 0, 0]).unwrap(),
    )];
    let file = safetensors::serialize(views, None).unwrap();
    let e = import(&file, ImportOptions::camvid(Layout::PytorchEnet))
        .expect_err("unknown keys are an error");
    assert!(e.to_string().contains("backbone.layer1.weight"), "{e}");
}

/// The fuzzing seed corpus, and every crash the fuzzer ever found (fuzz/regressions/weights),
/// load or fail cleanly.
#[test]
fn fuzz_seeds_and_regressions_never_panic() {
    let mut n = 0;
    for dir in ["fuzz/seeds/weights", "fuzz/regressions/weights"] {
        let Ok(entries) =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + dir)
        else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let _ = Model::from_safetensors(&bytes);
            n += 1;
        }
    }
    assert!(n >= 3, "the seed corpus is there");
}
