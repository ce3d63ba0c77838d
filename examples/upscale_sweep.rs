//! Chooses the edge-aware upsampling's sigmas: CamVid val through the engine at a small
//! network size, its classes brought to the labels' size by the twin
//! (`kernels::upscale`) for each pair of sigmas, class mIoU printed per pair.
//!
//! `cargo run --release --example upscale_sweep -- DATA/val 240x176`

use enet_wgpu::kernels::upscale::{self, Sizes, Upscale};
use enet_wgpu::{Model, Segmenter};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 2, "usage: upscale_sweep VAL_DIR WxH");
    let dir = std::path::Path::new(&args[0]);
    let (nw, nh) = args[1]
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("size WxH"))?;
    let net: (usize, usize) = (nw.parse()?, nh.parse()?);
    let model = Model::from_safetensors(
        enet_wgpu::assets::default_model().ok_or_else(|| anyhow::anyhow!("no built-in model"))?,
    )?;
    let c = model.num_classes();
    let void = model.void_class;
    let gpu = enet_wgpu::blocking::gpu()?;
    let mut seg = Segmenter::with_precision(&gpu, &model, enet_wgpu::kernels::Precision::F32)?;
    let mut configs: Vec<(Upscale, f32, f32, usize)> = vec![
        (Upscale::Nearest, 1.0, 1.0, 4),
        (Upscale::Bilinear, 1.0, 1.0, 4),
    ];
    for (taps, sigmas) in [
        (4, &[1.0f32, 1.5][..]),
        (6, &[1.5, 2.0, 3.0][..]),
        (8, &[2.0, 3.0, 4.0][..]),
    ] {
        for &s in sigmas {
            for r in [0.05f32, 0.1, 0.2] {
                configs.push((Upscale::Edge, s, r, taps));
            }
        }
    }
    let mut conf = vec![vec![0u64; c * c]; configs.len()];
    let mut images: Vec<_> = std::fs::read_dir(dir.join("images"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    images.sort();
    for (k, path) in images.iter().enumerate() {
        let img = image::open(path)?.to_rgba8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let stem = path.file_stem().unwrap().to_string_lossy();
        let label = image::open(dir.join("labels").join(format!("{stem}.png")))?.to_luma8();
        let logits = pollster::block_on(seg.logits(img.as_raw(), w, h, net))?;
        let probs = upscale::softmax(&logits, c, net.0 * net.1);
        let sizes = Sizes {
            net,
            src: (w, h),
            out: (w, h),
            channels: c,
        };
        for (i, &(mode, s, r, taps)) in configs.iter().enumerate() {
            let inv = ((1.0 / (2.0 * s * s), 1.0 / (2.0 * r * r)), taps);
            for (p, &l) in label.as_raw().iter().enumerate() {
                if Some(l as usize) == void {
                    continue;
                }
                let got =
                    upscale::class_at_with(&probs, img.as_raw(), sizes, mode, inv, p % w, p / w);
                conf[i][l as usize * c + got as usize] += 1;
            }
        }
        eprint!("\r{} of {} frames", k + 1, images.len());
    }
    eprintln!();
    for (i, &(mode, s, r, taps)) in configs.iter().enumerate() {
        let m = &conf[i];
        let ious: Vec<f64> = (0..c)
            .filter(|&k| Some(k) != void)
            .filter_map(|k| {
                let tp = m[k * c + k];
                let fp: u64 = (0..c)
                    .filter(|&l| l != k && Some(l) != void)
                    .map(|l| m[l * c + k])
                    .sum();
                let fn_: u64 = (0..c).filter(|&p| p != k).map(|p| m[k * c + p]).sum();
                let d = tp + fp + fn_;
                (d > 0).then(|| tp as f64 / d as f64)
            })
            .collect();
        let miou = ious.iter().sum::<f64>() / ious.len() as f64;
        let what = match mode {
            Upscale::Edge => format!("edge {taps}x{taps} sigma_space {s} sigma_range {r}"),
            m => m.to_string(),
        };
        println!("{:<40} mIoU {miou:.4}", what);
    }
    Ok(())
}
