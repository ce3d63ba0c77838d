//! The shipped model (assets/enet-camvid.safetensors, embedded in the CLI and served with the
//! page) against PyTorch on the same weights and pixels.
//!
//! `tests/fixtures/enet-camvid-pytorch.safetensors` holds PyTorch's logits (first val frame,
//! every 8th row) and argmax (first three val frames), written by `scripts/pytorch_fixture.py`
//! from the shipped file with the normalisation its metadata states.

mod common;

use common::*;
use enet_wgpu::{Model, Segmenter};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/enet-camvid-pytorch.safetensors"
);

fn builtin() -> Model {
    let bytes = enet_wgpu::assets::default_model()
        .expect("the build embeds assets/enet-camvid.safetensors");
    Model::from_safetensors(bytes).expect("the shipped model loads")
}

#[test]
fn the_cli_embeds_the_shipped_file() {
    let shipped = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/enet-camvid.safetensors"
    ))
    .unwrap();
    assert!(enet_wgpu::assets::default_model() == Some(&shipped[..]));
    let m = builtin();
    assert_eq!(m.layout, enet_wgpu::Layout::Paper);
    assert_eq!(m.num_classes(), 12);
    assert_eq!(m.void_class, Some(11));
    // Trained with the train split's mean and std: the engine must apply them.
    assert!(m.normalization.std.iter().all(|&s| (0.2..0.5).contains(&s)));
    let prov: serde_json::Value = serde_json::from_str(m.provenance.as_deref().unwrap()).unwrap();
    assert!(prov["val_miou"].as_f64().unwrap() > 0.6, "{prov}");
}

/// PyTorch's logits and classes against an engine's: `logits` and `classes` run a frame
/// (RGBA8, width, height) at its own size.
fn check_against_pytorch(
    what: &str,
    mut logits: impl FnMut(&[u8], usize, usize) -> Vec<f32>,
    mut classes: impl FnMut(&[u8], usize, usize) -> Vec<u8>,
) {
    let fixture = std::fs::read(FIXTURE).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&fixture).unwrap();
    let frames = &val_frames()[..3];
    let names: Vec<String> = frames
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        meta.metadata().as_ref().unwrap()["frames"],
        names.join(","),
        "the fixture was made from these frames"
    );
    let st = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let argmax = st.tensor("argmax").unwrap();
    for (i, path) in frames.iter().enumerate() {
        let (rgba, w, h) = load_png_rgba(path);
        if i == 0 {
            let logits = logits(&rgba, w, h);
            let d = logit_diffs(&fixture, &logits, (12, h, w));
            // Pixels whose logits PyTorch itself sees move when every max-pool window whose top
            // two values are within 1e-4 of each other (relative; the tolerance this test
            // allows) takes its runner-up: there rounding alone picks the unpooling position,
            // and a flipped position moves a small patch of logits by up to a few units.
            let near: Vec<u8> = st.tensor("near_tie_frame0_rows").unwrap().data().to_vec();
            let plane = near.len();
            let (mut sum_all, mut sum_rest, mut rest, mut over_rest) = (0f64, 0f64, 0usize, 0usize);
            for (k, &v) in d.iter().enumerate() {
                sum_all += v as f64;
                if near[k % plane] == 0 {
                    sum_rest += v as f64;
                    rest += 1;
                    over_rest += (v > 1e-3) as usize;
                }
            }
            let mean_all = sum_all / d.len() as f64;
            let mean_rest = sum_rest / rest as f64;
            let near_px = near.iter().filter(|&&v| v != 0).count();
            eprintln!(
                "{what}, built-in model: mean |logit diff| {mean_all:.3e} over all {} stored logits; \
                 {mean_rest:.3e} outside the {near_px} of {plane} stored pixels that max-pool \
                 near-ties decide, {over_rest} logits there over 1e-3",
                d.len()
            );
            if std::env::var("PARITY_DEBUG").is_ok() {
                let rows = h.div_ceil(8);
                let mut v: Vec<(f32, usize)> = d.iter().cloned().zip(0..).collect();
                v.sort_by(|a, b| b.0.total_cmp(&a.0));
                for (val, i) in v.iter().take(60) {
                    let (c, r, x) = (i / (rows * w), (i / w) % rows, i % w);
                    eprintln!(
                        "  diff {val:.4} class {c} y {} x {x} near-tie {}",
                        r * 8,
                        near[i % plane]
                    );
                }
            }
            assert!(
                mean_rest <= 1e-4,
                "mean |logit diff| {mean_rest} outside near-ties"
            );
            assert_eq!(over_rest, 0, "logits over 1e-3 outside near-ties");
            // The near-tie patches are a minority, and even with them the mean stays small.
            assert!(
                near_px * 4 <= plane,
                "{near_px} of {plane} pixels near-tied"
            );
            assert!(
                mean_all <= 5e-4,
                "mean |logit diff| {mean_all} over all stored logits"
            );
        }
        let map = classes(&rgba, w, h);
        let want = &argmax.data()[i * w * h..(i + 1) * w * h];
        let same = map.iter().zip(want).filter(|(a, b)| a == b).count() as f64 / (w * h) as f64;
        eprintln!("{what}, {}: argmax agreement {same:.5}", names[i]);
        assert!(same >= 0.999, "{}: argmax agreement {same}", names[i]);
    }
}

#[test]
fn builtin_model_matches_pytorch() {
    let model = builtin();
    let seg = std::cell::RefCell::new(
        Segmenter::with_precision(gpu(), &model, enet_wgpu::kernels::Precision::F32).unwrap(),
    );
    check_against_pytorch(
        "GPU",
        |rgba, w, h| pollster::block_on(seg.borrow_mut().logits(rgba, w, h, (w, h))).unwrap(),
        |rgba, w, h| {
            pollster::block_on(seg.borrow_mut().segment(rgba, w, h, (w, h)))
                .unwrap()
                .data
        },
    );
}

#[test]
fn cpu_engine_matches_pytorch() {
    let model = builtin();
    let seg = std::cell::RefCell::new(enet_wgpu::cpu::CpuSegmenter::new(&model, None).unwrap());
    check_against_pytorch(
        "CPU engine",
        |rgba, w, h| seg.borrow_mut().logits(rgba, w, h, (w, h)).unwrap(),
        |rgba, w, h| seg.borrow_mut().segment(rgba, w, h, (w, h)).unwrap().data,
    );
}

/// The whole network on a device with WebGPU's default limits (what the page asks for):
/// every kernel fits them, and the classes still match PyTorch's.
#[test]
fn runs_within_webgpu_default_limits() {
    let adapter = pollster::block_on(
        enet_wgpu::runtime::instance(enet_wgpu::runtime::backend_choices()[0])
            .request_adapter(&Default::default()),
    )
    .expect("an adapter");
    let gpu = pollster::block_on(enet_wgpu::Gpu::from_adapter_with(
        adapter,
        enet_wgpu::runtime::Limits::Default,
    ))
    .expect("a device with the default limits");
    assert_eq!(
        gpu.device.limits().max_storage_buffer_binding_size,
        wgpu::Limits::default().max_storage_buffer_binding_size
    );
    let model = builtin();
    let fixture = std::fs::read(FIXTURE).unwrap();
    let st = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let argmax = st.tensor("argmax").unwrap();
    let mut seg =
        Segmenter::with_precision(&gpu, &model, enet_wgpu::kernels::Precision::F32).unwrap();
    let path = &val_frames()[1];
    let (rgba, w, h) = load_png_rgba(path);
    let map = pollster::block_on(seg.segment(&rgba, w, h, (w, h))).unwrap();
    let want = &argmax.data()[w * h..2 * w * h];
    let same = map.data.iter().zip(want).filter(|(a, b)| a == b).count() as f64 / (w * h) as f64;
    eprintln!("default limits: argmax agreement {same:.5}");
    assert!(same >= 0.999, "argmax agreement {same}");
}

/// `shaders/upscale.wgsl` (after `shaders/refine.wgsl` in edge mode) against their twins
/// (`kernels::upscale`, `kernels::refine`) on the shipped model's own probabilities for a val
/// frame run small: every mode, at the frame's size, larger, a single pixel and extreme
/// aspects. The twin is given the engine's logits, so the two differ only
/// by float rounding (GPU `exp` and division): near-ties may flip.
#[test]
fn upscale_kernel_matches_its_twin() {
    use enet_wgpu::kernels::upscale::{self, Sizes, Upscale};
    let model = builtin();
    let (rgba, w, h) = load_png_rgba(&val_frames()[0]);
    let net = (64, 48);
    let mut seg =
        Segmenter::with_precision(gpu(), &model, enet_wgpu::kernels::Precision::F32).unwrap();
    let logits = pollster::block_on(seg.logits(&rgba, w, h, net)).unwrap();
    let c = model.num_classes();
    let probs = upscale::softmax(&logits, c, net.0 * net.1);
    for out in [(w, h), (2 * w, 2 * h), (1, 1), (3, 200), (500, 7)] {
        for mode in Upscale::ALL {
            let got = pollster::block_on(seg.segment_to(&rgba, (w, h), net, out, mode)).unwrap();
            assert_eq!((got.width, got.height), out);
            let sizes = Sizes {
                net,
                src: (w, h),
                out,
                channels: c,
            };
            // Edge mode refines the probabilities at the network's size first (refine.wgsl).
            let want = if enet_wgpu::kernels::refine::applies(mode, net, out) {
                let refined = enet_wgpu::kernels::refine::refine(&probs, &rgba, sizes);
                upscale::upscale(&refined, &rgba, sizes, mode)
            } else {
                upscale::upscale(&probs, &rgba, sizes, mode)
            };
            let same = got.data.iter().zip(&want).filter(|(a, b)| a == b).count();
            let n = want.len();
            assert!(
                same * 1000 >= n * 999 || n - same <= 1,
                "{mode} at {out:?}: {same} of {n} pixels agree"
            );
        }
    }
    // Nearest through the kernel is the plain class map, picked as the overlay picks it.
    let map = pollster::block_on(seg.segment(&rgba, w, h, net)).unwrap();
    let near =
        pollster::block_on(seg.segment_to(&rgba, (w, h), net, (w, h), Upscale::Nearest)).unwrap();
    assert_eq!(near, map.resize_nearest(w, h));
}
