//! Shared test helpers: one GPU per test binary, the reference data, comparisons.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use enet_wgpu::kernels::twin::Tensor;
use enet_wgpu::model::Normalization;
use enet_wgpu::model::graph::{Graph, Shape};
use enet_wgpu::model::weights::SplitMix;
use enet_wgpu::runtime::{Engine, Gpu};

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = enet_wgpu::blocking::gpu().expect("a GPU adapter (lavapipe in CI)");
        eprintln!("adapter: {}", gpu.describe());
        gpu
    })
}

/// `shared/<rel>` in the closest folder above the repository that has it (normally
/// `../shared`), or the folder an environment variable names.
fn shared_dir(var: &str, rel: &str, marker: &str) -> PathBuf {
    let found = std::env::var_os(var).map(PathBuf::from).or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .skip(1)
            .map(|a| a.join("shared").join(rel))
            .find(|d| d.join(marker).exists())
    });
    match found {
        Some(d) if d.join(marker).exists() => d,
        _ => panic!("shared/{rel} not found next to the repository (set {var})"),
    }
}

/// The peer ENet weights and outputs (`../shared/reference`, or `ENET_REFERENCE_DIR`).
pub fn reference_dir() -> PathBuf {
    shared_dir(
        "ENET_REFERENCE_DIR",
        "reference",
        "peer-enet-camvid.safetensors",
    )
}

/// The decoded val frames of the reference data (lossless PNGs), sorted by name.
pub fn val_frames() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(reference_dir().join("val-decoded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v
}

/// CamVid (`../shared/data/camvid`, or `ENET_CAMVID_DIR`).
pub fn camvid_dir() -> PathBuf {
    shared_dir("ENET_CAMVID_DIR", "data/camvid", "val/images")
}

pub fn random_tensor(rng: &mut SplitMix, shape: Shape) -> Tensor {
    Tensor {
        shape,
        data: (0..shape.len()).map(|_| rng.uniform(-1.0, 1.0)).collect(),
    }
}

/// Runs `graph` on the GPU with tensor 0 = `input` (no preprocess) and reads `outputs`.
pub fn run_gpu(graph: &Graph, input: &Tensor, outputs: &[usize]) -> Vec<Vec<f32>> {
    run_gpu_at(graph, input, outputs, enet_wgpu::kernels::Precision::F32)
}

/// [`run_gpu`] with activations and weights stored at `precision`. The fused kernels run
/// with both of their workgroup sizes (64 invocations, as on CPU emulations like this one,
/// and 256, as on GPUs) and, with 256, both tile sizes (64 and 32 pixels): all must give
/// the same values; the first's are returned.
pub fn run_gpu_at(
    graph: &Graph,
    input: &Tensor,
    outputs: &[usize],
    precision: enet_wgpu::kernels::Precision,
) -> Vec<Vec<f32>> {
    use enet_wgpu::kernels::bottleneck::{CPU_THREADS, THREADS};
    use enet_wgpu::runtime::FusedConfig;
    use enet_wgpu::runtime::fuse::{MIN_TILE, PIXELS};
    let run = |threads, tile_pixels| {
        let fused = FusedConfig {
            threads,
            tile_pixels,
        };
        let engine = Engine::with_config(gpu(), graph, Normalization::default(), precision, fused)
            .expect("engine");
        let plan = engine
            .plan(
                (input.shape.w, input.shape.h),
                (input.shape.w, input.shape.h),
            )
            .expect("plan");
        plan.write_tensor(0, &input.data);
        plan.submit_ops_only();
        outputs
            .iter()
            .map(|&t| pollster::block_on(plan.read_tensor(t)).expect("readback"))
            .collect::<Vec<_>>()
    };
    let got = run(CPU_THREADS, PIXELS);
    for tile in [PIXELS, MIN_TILE] {
        for (a, b) in got.iter().zip(run(THREADS, tile)) {
            assert_close(
                &b,
                a,
                1e-5,
                &format!(
                    "{THREADS} invocations, {tile}-pixel tiles vs {CPU_THREADS}, {PIXELS}-pixel"
                ),
            );
        }
    }
    got
}

/// Largest absolute difference, with a message naming the first offending index.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(d.is_finite(), "{what}: non-finite at {i}: {g} vs {w}");
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= tol * (1.0 + want[worst.1].abs()),
        "{what}: max |diff| {} at {} (gpu {} vs cpu {})",
        worst.0,
        worst.1,
        got[worst.1],
        want[worst.1]
    );
}

pub fn load_png_rgba(path: &std::path::Path) -> (Vec<u8>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgba8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w as usize, h as usize)
}

/// |engine - PyTorch| for every logit a `scripts/pytorch_fixture.py` fixture holds (the
/// first frame's logits on every `row_step`-th row).
pub fn logit_diffs(fixture: &[u8], got: &[f32], (c, h, w): (usize, usize, usize)) -> Vec<f32> {
    let st = safetensors::SafeTensors::deserialize(fixture).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(fixture).unwrap();
    let step: usize = meta.metadata().as_ref().unwrap()["row_step"]
        .parse()
        .unwrap();
    let want: Vec<f32> =
        bytemuck::pod_collect_to_vec(st.tensor("logits_frame0_rows").unwrap().data());
    let rows = h.div_ceil(step);
    assert_eq!(want.len(), c * rows * w, "fixture shape");
    let mut diffs = Vec::with_capacity(want.len());
    for ch in 0..c {
        for (r, y) in (0..h).step_by(step).enumerate() {
            for x in 0..w {
                diffs.push((got[(ch * h + y) * w + x] - want[(ch * rows + r) * w + x]).abs());
            }
        }
    }
    diffs
}
