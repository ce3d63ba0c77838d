//! The `enet` binary end to end: results, files written, and clear errors (never a panic).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use safetensors::SafeTensors;

fn enet(args: &[&str]) -> Output {
    // An empty cache folder: no choice remembered by `bench --tune` here or elsewhere on the
    // machine changes what these tests run.
    static EMPTY: OnceLock<tempfile::TempDir> = OnceLock::new();
    enet_cached(args, EMPTY.get_or_init(tmp).path())
}

/// `enet` with `cache` as its cache folder.
fn enet_cached(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enet"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run enet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A failure: exit code 1, a message containing `needle`, and no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {t}");
    assert!(!t.contains("panicked"), "panic: {t}");
    assert!(t.contains(needle), "expected {needle:?} in: {t}");
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The reference checkpoint converted with `enet import`, once per test binary.
fn imported() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tmp();
            let out = dir.path().join("peer.safetensors");
            let src = reference_dir().join("peer-enet-camvid.safetensors");
            let o = enet(&[
                "import",
                "--layout",
                "pytorch-enet",
                "--classes",
                "camvid",
                src.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", text(&o));
            (dir, out)
        })
        .1
}

fn val_png(i: usize) -> PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(reference_dir().join("val-decoded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v[i].clone()
}

#[test]
fn import_then_segment_classes_matches_pytorch() {
    let dir = tmp();
    let frames = [val_png(1), val_png(2)];
    let o = enet(&[
        "segment",
        frames[0].to_str().unwrap(),
        frames[1].to_str().unwrap(),
        "--weights",
        imported().to_str().unwrap(),
        "--output",
        "classes",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/peer-enet-pytorch.safetensors"
    ))
    .unwrap();
    let st = SafeTensors::deserialize(&fixture).unwrap();
    let argmax = st.tensor("argmax").unwrap();
    for (i, f) in frames.iter().enumerate() {
        let out = dir
            .path()
            .join(format!("{}.png", f.file_stem().unwrap().to_string_lossy()));
        let img = image::open(&out).unwrap();
        assert!(
            matches!(img, image::DynamicImage::ImageLuma8(_)),
            "8-bit grey"
        );
        let (w, h) = (480, 360);
        assert_eq!((img.width(), img.height()), (w, h));
        let got = img.to_luma8().into_raw();
        let want =
            &argmax.data()[(i + 1) * w as usize * h as usize..(i + 2) * w as usize * h as usize];
        let same = got.iter().zip(want).filter(|(a, b)| a == b).count();
        assert!(
            same as f64 >= 0.999 * got.len() as f64,
            "{}: {same} of {}",
            out.display(),
            got.len()
        );
    }
}

#[test]
fn segment_overlay_and_color_at_odd_sizes() {
    let dir = tmp();
    // 50x30 is not a multiple of 8: the network runs at 48x32 and classes come back at 50x30.
    let src = dir.path().join("odd.png");
    image::RgbImage::from_fn(50, 30, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 8) as u8, 90])
    })
    .save(&src)
    .unwrap();
    for kind in ["overlay", "color", "classes"] {
        let out = dir.path().join(format!("out-{kind}.png"));
        let o = enet(&[
            "segment",
            src.to_str().unwrap(),
            "--weights",
            imported().to_str().unwrap(),
            "--output",
            kind,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("48x32"),
            "the size policy is printed: {}",
            text(&o)
        );
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (50, 30), "{kind}");
    }
    // An explicit --size is used as given.
    let out = dir.path().join("sized.png");
    let o = enet(&[
        "segment",
        src.to_str().unwrap(),
        "--weights",
        imported().to_str().unwrap(),
        "--size",
        "64x16",
        "--output",
        "classes",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(image::open(&out).unwrap().width(), 50);
}

#[test]
fn eval_reproduces_the_builtin_models_val_miou() {
    // The one whole-val run of the suite (101 frames at 480x360), on the CPU engine (what
    // auto picks on a CPU emulation of a GPU). The built-in model's provenance states
    // PyTorch's val mIoU at training time; the engine, with no --weights, must reproduce it
    // (JPEG decoders differ by a level here and there: allow 0.002).
    let model = enet_wgpu::Model::from_safetensors(
        enet_wgpu::assets::default_model().expect("the build embeds the built-in model"),
    )
    .unwrap();
    let prov: serde_json::Value =
        serde_json::from_str(model.provenance.as_deref().unwrap()).unwrap();
    let stated = prov["val_miou"].as_f64().unwrap();
    let data = camvid_dir().join("val");
    let o = enet(&["eval", "--data", data.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("one JSON object on stdout");
    let miou = v["miou"].as_f64().unwrap();
    eprintln!(
        "built-in model ({}): val mIoU {miou:.4} (PyTorch at training time: {stated:.4}), pixel accuracy {:.4}",
        v["engine"],
        v["pixel_accuracy"].as_f64().unwrap()
    );
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["images"], 101);
    assert_eq!(v["per_class_iou"].as_object().unwrap().len(), 11);
    assert!(v["pixel_accuracy"].as_f64().unwrap() > 0.8);
    assert!(
        (miou - stated).abs() <= 0.002,
        "mIoU {miou} vs PyTorch's {stated}"
    );
}

#[test]
fn the_engines_agree_on_val_frames() {
    // The CPU engine against the GPU's in f32, and the GPU's f16 storage against its f32, on
    // the first 8 val frames at 480x360.
    let data = camvid_dir().join("val");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--json",
            "--limit",
            "8",
        ];
        args.extend_from_slice(extra);
        let o = enet(&args);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let (agreement, miou, other) = (
            v["agreement"].as_f64().unwrap(),
            v["miou"].as_f64().unwrap(),
            v["compared_miou"].as_f64().unwrap(),
        );
        eprintln!(
            "{} ({}) against {} on the {}: the same class on {:.3} % of pixels, mIoU {miou:.5} against {other:.5}",
            v["engine"],
            v["backend"],
            v["compared_precision"],
            v["compared_backend"],
            agreement * 100.0
        );
        (v, agreement, miou, other)
    };
    let (v, agreement, miou, gpu) = eval(&[
        "--backend",
        "cpu",
        "--compare-backend",
        "gpu",
        "--compare-precision",
        "f32",
    ]);
    assert_eq!(
        (&v["backend"], &v["compared_backend"]),
        (&"cpu".into(), &"gpu".into())
    );
    assert!(agreement >= 0.999, "CPU against GPU: {agreement}");
    assert!((miou - gpu).abs() <= 0.002, "{miou} against {gpu}");
    let (v, agreement, miou, f32_miou) = eval(&["--backend", "gpu", "--compare-precision", "f32"]);
    assert_eq!(v["compared_precision"], "f32");
    assert!(agreement >= 0.995, "{agreement}");
    assert!((miou - f32_miou).abs() <= 0.003);
}

#[test]
fn eval_compares_two_models_pixel_by_pixel() {
    let data = camvid_dir().join("val");
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/enet-camvid.safetensors"
    );
    let agreement = |other: &str| {
        let o = enet(&[
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--limit",
            "1",
            "--compare",
            other,
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["agreement_pixels"], 480 * 360);
        v["agreement"].as_f64().unwrap()
    };
    // The built-in model against its own file, then against a different model.
    assert_eq!(agreement(shipped), 1.0);
    let peer = agreement(imported().to_str().unwrap());
    eprintln!("built-in vs peer model on the first val frame: {peer:.4}");
    assert!(peer > 0.5 && peer < 1.0, "{peer}");
}

#[test]
fn eval_text_report_and_limit() {
    let data = camvid_dir().join("val");
    let o = enet(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--weights",
        imported().to_str().unwrap(),
        "--limit",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("2 images")
            && t.contains("class mIoU")
            && t.contains("pixel accuracy")
            && t.contains("bicyclist"),
        "{t}"
    );
}

#[test]
fn bench_reports_json() {
    let o = enet(&[
        "bench",
        "--backend",
        "gpu",
        "--synthetic",
        "paper",
        "--size",
        "64x48",
        "--frames",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "ms_per_frame",
        "gpu_ms_per_frame",
        "dispatches_per_frame",
        "adapter",
        "size",
    ] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert_eq!(v["size"], "64x48");
    assert!(v["ms_per_frame"].as_f64().unwrap() > 0.0);
    // 93 ops, preprocessing and argmax; 19 bottlenecks in one dispatch instead of three, the
    // 2 downsampling and 4 asymmetric blocks in one instead of four, the 2 upsampling blocks
    // in one instead of five, the preprocessing in the initial block, the argmax in the last
    // layer (runtime::fuse).
    assert_eq!(v["dispatches_per_frame"], 29);
    assert!(
        ["f16", "f32"].contains(&v["precision"].as_str().unwrap()),
        "{v}"
    );
    // lavapipe is a CPU: the fused kernels' smaller workgroups.
    assert_eq!(v["threads_per_workgroup"], 64, "{v}");
    assert_eq!(v["fused"], true);
    let o = enet(&[
        "bench",
        "--synthetic",
        "paper",
        "--size",
        "64x48",
        "--frames",
        "1",
        "--json",
        "--unfused",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dispatches_per_frame"], 95);
}

#[test]
fn bench_on_the_cpu_names_its_simd_and_threads() {
    let args = |backend: &str, threads: &str| {
        enet(&[
            "bench",
            "--synthetic",
            "pytorch-enet",
            "--size",
            "64x48",
            "--frames",
            "2",
            "--json",
            "--backend",
            backend,
            "--cpu-threads",
            threads,
        ])
    };
    for threads in ["1", "2"] {
        let o = args("cpu", threads);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["backend"], "cpu", "{v}");
        assert_eq!(v["threads"].to_string(), threads, "{v}");
        assert!(v["simd"].is_string(), "{v}");
        assert!(v["ms_per_frame"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["size"], "64x48");
    }
    // lavapipe is an emulation: auto takes the CPU engine.
    let o = args("auto", "1");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "cpu", "{}", text(&o));
    // Options of the GPU engine are refused on the CPU, by name.
    assert_clean_error(
        &enet(&["bench", "--backend", "cpu", "--precision", "f16"]),
        "--precision f16 is an option of the GPU engine",
    );
    let o = enet(&["bench", "--backend", "cpu", "--cpu-threads", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("1 to 256 threads"), "{}", text(&o));
}

#[test]
fn bench_tune_times_every_configuration_and_segment_uses_the_fastest() {
    let cache = tmp();
    let o = enet_cached(
        &[
            "bench", "--tune", "--size", "64x48", "--frames", "1", "--json",
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &v["tuning"];
    // lavapipe is a CPU emulation: the trials run at half the size.
    assert_eq!(t["trial_size"], "32x24", "{v}");
    let trials = t["trials"].as_array().unwrap();
    // lavapipe has shader-f16 and allows 256 invocations: every configuration is tried.
    assert_eq!(trials.len(), 10, "{t}");
    let timed: Vec<(String, f64)> = trials
        .iter()
        .map(|x| {
            let ms = x["ms_per_frame"].as_f64();
            assert!(ms.is_some_and(|ms| ms > 0.0), "{x}");
            (x["engine"].as_str().unwrap().to_string(), ms.unwrap())
        })
        .collect();
    let fastest = timed
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n.clone())
        .unwrap();
    eprintln!("lavapipe, trials at 32x24: {timed:?}; chosen {fastest}");
    assert_eq!(t["chosen"], fastest.as_str());
    assert_eq!(
        v["engine"],
        fastest.as_str(),
        "the bench runs the chosen one"
    );
    assert_eq!(
        trials.iter().filter(|x| x["chosen"] == true).count(),
        1,
        "{t}"
    );
    let file = cache.path().join("enet-wgpu").join("tuning.json");
    assert!(file.is_file(), "{}", t["remembered_in"]);
    // segment and eval run the remembered choice (the one measured at this size, or the
    // latest for the device), and say so; --no-tune and --precision force the default.
    let dir = tmp();
    let out = dir.path().join("o.png");
    let pic = val_png(0);
    let args = |extra: &[&str]| {
        let mut a = vec![
            "segment",
            pic.to_str().unwrap(),
            "--backend",
            "gpu",
            "--size",
            "64x48",
            "-o",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        enet_cached(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            cache.path(),
        )
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("engine: {fastest} (measured")),
        "{}",
        text(&o)
    );
    for forced in [&["--no-tune"][..], &["--precision", "f32"]] {
        let o = run(forced);
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains("engine: "), "{forced:?}: {}", text(&o));
    }
    // A damaged cache is a note, never an error.
    std::fs::write(&file, "{ not json").unwrap();
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("note: the tuning cache") && text(&o).contains("ignored"),
        "{}",
        text(&o)
    );
}

#[test]
fn info_lists_the_adapter_and_the_builtin_model() {
    // Run as on a plain machine without a desktop session: nothing but the report.
    let o = Command::new(env!("CARGO_BIN_EXE_enet"))
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("chosen:") && t.contains("max_storage_buffer_binding_size"));
    // The CPU engine's instructions and threads, and what auto runs (lavapipe: the CPU).
    assert!(t.contains("cpu engine: ") && t.contains(" SIMD, "), "{t}");
    assert!(t.contains("--backend auto runs: the CPU engine"), "{t}");
    assert!(
        t.contains("built-in model: enet-camvid.safetensors")
            && t.contains("paper layout, 12 classes")
            && t.contains("CamVid train split")
            && t.contains("val class mIoU"),
        "{t}"
    );
    assert!(
        o.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn segment_with_no_options_uses_the_builtin_model_and_says_where_it_wrote() {
    let dir = tmp();
    let input = val_png(0);
    let o = Command::new(env!("CARGO_BIN_EXE_enet"))
        .args(["segment", input.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stem = input.file_stem().unwrap().to_string_lossy();
    let out = dir.path().join(format!("{stem}.overlay.png"));
    let t = text(&o);
    assert!(
        t.contains("no -o given: writing <name>.overlay.png into"),
        "{t}"
    );
    assert!(t.contains(&format!("-> {stem}.overlay.png")), "{t}");
    assert!(!t.contains("XDG_RUNTIME_DIR"), "{t}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (480, 360));
}

#[test]
fn describe_counts_parameters() {
    let o = enet(&["describe", "--layout", "paper"]);
    assert!(
        text(&o).contains("trainable parameters: 363856"),
        "{}",
        text(&o)
    );
    let o = enet(&["describe", "--layout", "pytorch-enet"]);
    assert!(
        text(&o).contains("trainable parameters: 350652"),
        "{}",
        text(&o)
    );
}

#[test]
fn errors_are_clear_and_never_panic() {
    let dir = tmp();
    let w = imported().to_str().unwrap();
    let good = val_png(0);
    let good = good.to_str().unwrap();
    let out = dir.path().join("o.png");
    let out = out.to_str().unwrap();
    // Missing input file.
    assert_clean_error(
        &enet(&["segment", "/nonexistent/x.png", "--weights", w, "-o", out]),
        "/nonexistent/x.png",
    );
    // A text file posing as an image.
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, "not an image").unwrap();
    assert_clean_error(
        &enet(&["segment", fake.to_str().unwrap(), "--weights", w, "-o", out]),
        "fake.png",
    );
    // A truncated PNG.
    let bytes = std::fs::read(good).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert_clean_error(
        &enet(&["segment", cut.to_str().unwrap(), "--weights", w, "-o", out]),
        "cut.png",
    );
    // Bad weights files.
    assert_clean_error(
        &enet(&[
            "segment",
            good,
            "--weights",
            fake.to_str().unwrap(),
            "-o",
            out,
        ]),
        "not a safetensors file",
    );
    assert_clean_error(
        &enet(&[
            "segment",
            good,
            "--weights",
            "/nonexistent.safetensors",
            "-o",
            out,
        ]),
        "cannot read weights",
    );
    let raw = reference_dir().join("peer-enet-camvid.safetensors");
    assert_clean_error(
        &enet(&[
            "segment",
            good,
            "--weights",
            raw.to_str().unwrap(),
            "-o",
            out,
        ]),
        "enet import",
    );
    // Sizes: malformed ones are usage errors (exit 2), too large for the adapter a clear error.
    for bad in ["0x0", "33x8", "banana"] {
        let o = enet(&["segment", good, "--weights", w, "--size", bad, "-o", out]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(!text(&o).contains("panicked"));
    }
    assert_clean_error(
        &enet(&[
            "segment",
            good,
            "--weights",
            w,
            "--size",
            "4096x4096",
            "--backend",
            "gpu",
            "-o",
            out,
        ]),
        "MiB",
    );
    // Never overwrite an input.
    let copy = dir.path().join("frame.png");
    std::fs::copy(good, &copy).unwrap();
    assert_clean_error(
        &enet(&[
            "segment",
            copy.to_str().unwrap(),
            "--weights",
            w,
            "-o",
            copy.to_str().unwrap(),
        ]),
        "overwrite",
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        bytes,
        "the input is untouched"
    );
    assert_clean_error(
        &enet(&[
            "import",
            "--layout",
            "pytorch-enet",
            raw.to_str().unwrap(),
            "-o",
            raw.to_str().unwrap(),
        ]),
        "is the input",
    );
    // Eval on a folder without labels.
    assert_clean_error(
        &enet(&[
            "eval",
            "--data",
            dir.path().to_str().unwrap(),
            "--weights",
            w,
        ]),
        "images/ and labels/",
    );
    // Without --weights and without an embedded model: say what to do.
    if enet_wgpu::assets::default_model().is_none() {
        assert_clean_error(&enet(&["segment", good, "-o", out]), "--weights");
    }
}

#[test]
fn unusual_images_give_results_or_clear_errors() {
    let dir = tmp();
    let w = imported().to_str().unwrap();
    let d = |name: &str| dir.path().join(name);
    // Grey, 16-bit, 1x1, tall and thin, CMYK JPEG: all segment, at their own size.
    image::GrayImage::from_fn(40, 24, |x, y| image::Luma([(x * 6 + y) as u8]))
        .save(d("grey.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(33, 17, |x, y| {
        image::Rgb([(x * 1900) as u16, (y * 3800) as u16, 30000])
    })
    .save(d("deep.png"))
    .unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([90, 120, 200]))
        .save(d("dot.png"))
        .unwrap();
    image::RgbImage::from_pixel(3, 200, image::Rgb([10, 200, 30]))
        .save(d("thin.png"))
        .unwrap();
    let cmyk = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cmyk.jpg"
    ));
    let classes = |input: &Path, out: &Path| {
        enet(&[
            "segment",
            input.to_str().unwrap(),
            "--weights",
            w,
            "--output",
            "classes",
            "-o",
            out.to_str().unwrap(),
        ])
    };
    for (input, size) in [
        (d("grey.png"), (40, 24)),
        (d("deep.png"), (33, 17)),
        (d("dot.png"), (1, 1)),
        (d("thin.png"), (3, 200)),
        (cmyk, (64, 48)),
    ] {
        let out = d("out.png");
        let o = classes(&input, &out);
        assert!(o.status.success(), "{}: {}", input.display(), text(&o));
        let img = image::open(&out).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (size.0 as u32, size.1 as u32),
            "{}",
            input.display()
        );
    }
    // Larger than the GPU's texture limit: shrunk first, with a note, never an out-of-memory crash.
    let huge = d("huge.png");
    image::GrayImage::from_pixel(20000, 16, image::Luma([128]))
        .save(&huge)
        .unwrap();
    let out = d("huge-out.png");
    let o = classes(&huge, &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("note:"), "{}", text(&o));
    assert_eq!(image::open(&out).unwrap().width(), 20000);
    // More pixels than the decoder may allocate: refused by name and size, other images go on.
    let vast = d("vast.png");
    image::GrayImage::from_pixel(24000, 24000, image::Luma([90]))
        .save(&vast)
        .unwrap();
    let o = enet(&[
        "segment",
        vast.to_str().unwrap(),
        huge.to_str().unwrap(),
        "--weights",
        w,
        "-o",
        d("both").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("vast.png is 24000x24000: too large to decode"),
        "{}",
        text(&o)
    );
    assert!(d("both").join("huge.png").exists(), "{}", text(&o));
}

/// A partial picture is never segmented nor scored: JPEGs cut inside the header, inside the
/// scan and just before the end marker, PNGs cut inside the header, the image data and before
/// IEND, are each named with where their data ends; the other files go on, and a JPEG with
/// bytes after its end marker is whole.
#[test]
fn truncated_pictures_are_refused_by_name() {
    let dir = tmp();
    let d = |name: &str| dir.path().join(name);
    let camvid = camvid_dir().join("val");
    let jpg_path = std::fs::read_dir(camvid.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let jpg = std::fs::read(&jpg_path).unwrap();
    let sos = jpg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let png = std::fs::read(val_png(0)).unwrap();
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    let cuts: Vec<(&str, &[u8])> = vec![
        ("header.jpg", &jpg[..sos / 2]),
        ("scan.jpg", &jpg[..3000]),
        ("end-marker.jpg", &jpg[..jpg.len() - 2]),
        ("ihdr.png", &png[..20]),
        ("idat.png", &png[..idat + png.len() / 2]),
        ("iend.png", &png[..png.len() - 12]),
    ];
    let mut args = vec!["segment".to_string()];
    for (name, bytes) in &cuts {
        std::fs::write(d(name), bytes).unwrap();
        args.push(d(name).to_str().unwrap().to_string());
    }
    let mut appended = jpg.clone();
    appended.extend(b"\x00 trailing bytes \xFF\xD8");
    std::fs::write(d("appended.jpg"), &appended).unwrap();
    args.push(d("appended.jpg").to_str().unwrap().to_string());
    let out = d("out");
    args.extend(["--size", "64x48", "-o", out.to_str().unwrap()].map(String::from));
    let o = enet(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let t = text(&o);
    assert_clean_error(&o, "6 of 7 images could not be segmented");
    for (name, bytes) in &cuts {
        let kind = if name.ends_with(".jpg") {
            "JPEG"
        } else {
            "PNG"
        };
        assert!(
            t.contains(&format!(
                "{name}: the {kind} data ends early, at byte {}",
                bytes.len()
            )),
            "{name}: {t}"
        );
        assert!(!out.join(name).with_extension("png").exists(), "{name}");
    }
    assert!(out.join("appended.png").exists(), "{t}");

    // eval: a cut picture and a cut label are named and skipped, the rest is scored, exit 1.
    let data = d("data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("labels")).unwrap();
    let label = std::fs::read(
        camvid
            .join("labels")
            .join(jpg_path.file_stem().unwrap())
            .with_extension("png"),
    )
    .unwrap();
    for stem in ["a", "b", "c"] {
        let picture: &[u8] = if stem == "b" { &jpg[..3000] } else { &jpg };
        std::fs::write(data.join(format!("images/{stem}.jpg")), picture).unwrap();
        let label: &[u8] = if stem == "c" {
            &label[..label.len() / 2]
        } else {
            &label
        };
        std::fs::write(data.join(format!("labels/{stem}.png")), label).unwrap();
    }
    let o = enet(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--size",
        "64x48",
        "--json",
    ]);
    let t = text(&o);
    assert_clean_error(&o, "2 of 3 images could not be evaluated");
    assert!(
        t.contains("b.jpg: the JPEG data ends early, at byte 3000"),
        "{t}"
    );
    assert!(t.contains("c.png: the PNG data ends early"), "{t}");
    let json: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .expect("figures for the whole picture"),
    )
    .unwrap();
    assert_eq!(json["images"], 1);
    assert_eq!(json["failed_images"], 2);
}

/// `--upsample`: each mode gives a class map at the image's size; edge-aware and nearest
/// differ only near boundaries; eval reports the mode and the accuracy near label edges; a
/// mode that does not exist is a usage error naming the choices.
#[test]
fn upsample_modes_map_classes_to_the_image() {
    let dir = tmp();
    let img = val_png(0);
    let mut maps = Vec::new();
    for mode in ["nearest", "bilinear", "edge"] {
        let out = dir.path().join(format!("{mode}.png"));
        let o = enet(&[
            "segment",
            img.to_str().unwrap(),
            "--size",
            "120x88",
            "--upsample",
            mode,
            "--output",
            "classes",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let map = image::open(&out).unwrap().to_luma8();
        assert_eq!(map.dimensions(), (480, 360), "{mode}");
        maps.push(map.into_raw());
    }
    let differ = |a: &[u8], b: &[u8]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    let (near_edge, near_bilinear) = (differ(&maps[0], &maps[2]), differ(&maps[0], &maps[1]));
    println!("edge differs from nearest on {near_edge} pixels, bilinear on {near_bilinear}");
    assert!(near_edge > 0 && near_edge * 5 < 480 * 360, "{near_edge}");
    assert!(near_bilinear > 0, "{near_bilinear}");

    let o = enet(&[
        "eval",
        "--data",
        camvid_dir().join("val").to_str().unwrap(),
        "--limit",
        "1",
        "--size",
        "120x88",
        "--upsample",
        "bilinear",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["upsample"], "bilinear");
    let band = v["boundary_accuracy"].as_f64().unwrap();
    assert!(
        band > 0.2 && band < v["pixel_accuracy"].as_f64().unwrap(),
        "{v}"
    );

    let o = enet(&["segment", img.to_str().unwrap(), "--upsample", "cubic"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("nearest, bilinear or edge"),
        "{}",
        text(&o)
    );
}
