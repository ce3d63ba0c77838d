//! Chooses the edge-aware upsampling's sigmas: CamVid val through the engine at a small
//! network size, its classes brought to the labels' size by the twin
//! (`kernels::upscale`) for each pair of sigmas, class mIoU printed per pair.
//!
//! With `guided` after the size, the sweep is instead of the edge-aware window: a fast guided
//! filter (He and Sun 2015; grey guide at the labels' size, on the bilinear probabilities, per
//! class) for several radii and epsilons, against nearest, bilinear and the shipped edge mode.
//!
//! With `crf`, the sweep is of the refinement before the edge upscale (`kernels::refine`,
//! mean-field iterations of a Potts CRF in a window at the network's size): its spatial and
//! colour sigmas, weight and iterations. `crf` may be followed by a frame stride (every k-th
//! frame) for quicker sweeps.
//!
//! `cargo run --release --example upscale_sweep -- DATA/val 240x176 [guided | crf [STRIDE]]`

use enet_wgpu::kernels::refine;
use enet_wgpu::kernels::upscale::{self, Sizes, Upscale};
use enet_wgpu::{Model, Segmenter};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let guided_sweep = args.get(2).is_some_and(|a| a == "guided");
    let crf_sweep = args.get(2).is_some_and(|a| a == "crf");
    anyhow::ensure!(
        args.len() == 2 || (args.len() == 3 && guided_sweep) || (crf_sweep && args.len() <= 4),
        "usage: upscale_sweep VAL_DIR WxH [guided | crf [STRIDE]]"
    );
    let stride: usize = if crf_sweep && args.len() == 4 {
        args[3].parse()?
    } else {
        1
    };
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
                if !(guided_sweep || crf_sweep) || (taps, s, r) == (4, 1.0, 0.1) {
                    configs.push((Upscale::Edge, s, r, taps));
                }
            }
        }
    }
    // (radius in output pixels, epsilon)
    let filters: Vec<(usize, f32)> = if guided_sweep {
        vec![(2, 1e-3), (4, 1e-3), (4, 1e-2), (8, 1e-3)]
    } else {
        Vec::new()
    };
    // (window radius, spatial sigma, colour sigma, weight, iterations)
    let crfs: Vec<Crf> = if crf_sweep {
        let mut v = Vec::new();
        // The shipped settings, then one change at a time: weight, iterations, the spatial
        // and colour sigmas.
        let base = Crf {
            scale: 1,
            r: refine::RADIUS as u32,
            step: refine::STEP as u32,
            ss: refine::SIGMA_SPACE,
            sr: refine::SIGMA_RANGE,
            wt: refine::WEIGHT,
            iters: refine::ITERATIONS,
        };
        v.push(base);
        for wt in [3.0, 4.0] {
            v.push(Crf { wt, ..base });
        }
        v.push(Crf { iters: 5, ..base });
        for sr in [0.025, 0.05] {
            v.push(Crf { sr, ..base });
        }
        for ss in [3.0, 6.0] {
            v.push(Crf { ss, ..base });
        }
        // At twice the network's size (bilinear probabilities): the same taps, and the same
        // reach in the picture.
        v.push(Crf { scale: 2, ..base });
        v.push(Crf {
            scale: 2,
            r: 2 * base.r,
            step: 2 * base.step,
            ss: 2.0 * base.ss,
            ..base
        });
        v
    } else {
        Vec::new()
    };
    let mut conf = vec![vec![0u64; c * c]; configs.len() + filters.len() + crfs.len()];
    let mut images: Vec<_> = std::fs::read_dir(dir.join("images"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    images.sort();
    let images: Vec<_> = images.into_iter().step_by(stride).collect();
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
        if !filters.is_empty() {
            let maps = bilinear_full(&probs, sizes);
            let grey: Vec<f32> = img
                .as_raw()
                .chunks_exact(4)
                .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0)
                .collect();
            for (f, &(r, eps)) in filters.iter().enumerate() {
                let q: Vec<Vec<f32>> = maps
                    .iter()
                    .map(|m| guided(&grey, m, w, h, r, eps))
                    .collect();
                for (p, &l) in label.as_raw().iter().enumerate() {
                    if Some(l as usize) == void {
                        continue;
                    }
                    let got = (0..c).max_by(|&a, &b| q[a][p].total_cmp(&q[b][p])).unwrap();
                    conf[configs.len() + f][l as usize * c + got] += 1;
                }
            }
        }
        if !crfs.is_empty() {
            for (f, crf) in crfs.iter().enumerate() {
                let mid = (
                    (crf.scale * net.0).min(w.max(net.0)),
                    (crf.scale * net.1).min(h.max(net.1)),
                );
                let sizes = Sizes { net: mid, ..sizes };
                let probs = resample(&probs, c, net, mid);
                let colours = refine::colours(img.as_raw(), sizes);
                // The shipped twin (kernels::refine) with this sweep's settings, then the
                // shipped edge upscale.
                let p = refine::RefineParams {
                    inv_space: 1.0 / (2.0 * crf.ss * crf.ss),
                    inv_range: 1.0 / (2.0 * crf.sr * crf.sr),
                    weight: crf.wt,
                    radius: crf.r,
                    step: crf.step,
                    ..refine::params(sizes)
                };
                let mut q = probs.clone();
                for _ in 0..crf.iters {
                    q = refine::iterate(&probs, &q, &colours, &p);
                }
                let inv = (upscale::inverse_sigmas(), upscale::EDGE_TAPS);
                let i = configs.len() + filters.len() + f;
                for (p, &l) in label.as_raw().iter().enumerate() {
                    if Some(l as usize) == void {
                        continue;
                    }
                    let got = upscale::class_at_with(
                        &q,
                        img.as_raw(),
                        sizes,
                        Upscale::Edge,
                        inv,
                        p % w,
                        p / w,
                    );
                    conf[i][l as usize * c + got as usize] += 1;
                }
            }
        }
        eprint!("\r{} of {} frames", k + 1, images.len());
    }
    eprintln!();
    let names: Vec<String> = configs
        .iter()
        .map(|&(mode, s, r, taps)| match mode {
            Upscale::Edge => format!("edge {taps}x{taps} sigma_space {s} sigma_range {r}"),
            m => m.to_string(),
        })
        .chain(
            filters
                .iter()
                .map(|(r, eps)| format!("guided filter radius {r} eps {eps}")),
        )
        .chain(crfs.iter().map(|k| {
            format!(
                "refine x{} radius {} step {} sigma_space {} sigma_range {} weight {} iterations {}, then edge",
                k.scale, k.r, k.step, k.ss, k.sr, k.wt, k.iters
            )
        }))
        .collect();
    for (i, what) in names.iter().enumerate() {
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
        println!("{what:<60} mIoU {miou:.4}");
    }
    Ok(())
}

/// Each class's probabilities at the output size, blended from the 2 x 2 nearest network
/// pixels by distance.
fn bilinear_full(probs: &[f32], s: Sizes) -> Vec<Vec<f32>> {
    let ((nw, nh), (w, h)) = (s.net, s.out);
    let hw = nw * nh;
    let mut up = vec![vec![0f32; w * h]; s.channels];
    for y in 0..h {
        let fy = ((y as f32 + 0.5) * nh as f32 / h as f32 - 0.5).max(0.0);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(nh - 1);
        for x in 0..w {
            let fx = ((x as f32 + 0.5) * nw as f32 / w as f32 - 0.5).max(0.0);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(nw - 1);
            for (k, map) in up.iter_mut().enumerate() {
                let q = |yy: usize, xx: usize| probs[k * hw + yy * nw + xx];
                let top = q(y0, x0) * (1.0 - tx) + q(y0, x1) * tx;
                let bottom = q(y1, x0) * (1.0 - tx) + q(y1, x1) * tx;
                map[y * w + x] = top * (1.0 - ty) + bottom * ty;
            }
        }
    }
    up
}

/// Mean over the (2r+1)^2 window around each pixel (clipped at the borders), by an integral image.
fn boxf(v: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut ii = vec![0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0f64;
        for x in 0..w {
            row += v[y * w + x] as f64;
            ii[(y + 1) * (w + 1) + x + 1] = ii[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = ii[y1 * (w + 1) + x1] - ii[y0 * (w + 1) + x1] - ii[y1 * (w + 1) + x0]
                + ii[y0 * (w + 1) + x0];
            out[y * w + x] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
        }
    }
    out
}

/// He and Sun's guided filter of `p` by the grey guide `i`: a local linear model of `i`
/// per window, averaged.
fn guided(i: &[f32], p: &[f32], w: usize, h: usize, r: usize, eps: f32) -> Vec<f32> {
    let mi = boxf(i, w, h, r);
    let mp = boxf(p, w, h, r);
    let ip: Vec<f32> = i.iter().zip(p).map(|(a, b)| a * b).collect();
    let ii: Vec<f32> = i.iter().map(|a| a * a).collect();
    let mip = boxf(&ip, w, h, r);
    let mii = boxf(&ii, w, h, r);
    let mut a = vec![0f32; w * h];
    let mut b = vec![0f32; w * h];
    for k in 0..w * h {
        let var = mii[k] - mi[k] * mi[k];
        a[k] = (mip[k] - mi[k] * mp[k]) / (var + eps);
        b[k] = mp[k] - a[k] * mi[k];
    }
    let ma = boxf(&a, w, h, r);
    let mb = boxf(&b, w, h, r);
    (0..w * h).map(|k| ma[k] * i[k] + mb[k]).collect()
}

/// A refinement's settings.
#[derive(Clone, Copy)]
struct Crf {
    /// The refinement's size, in network sizes.
    scale: usize,
    /// The window's radius and the network pixels between its taps.
    r: u32,
    step: u32,
    /// Spatial sigma, network pixels.
    ss: f32,
    /// Colour sigma, RGB distance with channels in 0..1.
    sr: f32,
    /// The neighbours' weight against the unary.
    wt: f32,
    iters: usize,
}

/// Planar probabilities `[c][h][w]` at `from` resampled bilinearly to `to` (pixel centres).
fn resample(probs: &[f32], c: usize, from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    if from == to {
        return probs.to_vec();
    }
    let axis = |i: usize, n: usize, m: usize| {
        let f = ((i as f32 + 0.5) * n as f32 / m as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let i0 = f.floor() as usize;
        (i0, (i0 + 1).min(n - 1), f - i0 as f32)
    };
    let mut out = vec![0f32; c * to.0 * to.1];
    for y in 0..to.1 {
        let (y0, y1, fy) = axis(y, from.1, to.1);
        for x in 0..to.0 {
            let (x0, x1, fx) = axis(x, from.0, to.0);
            for k in 0..c {
                let p = &probs[k * from.0 * from.1..];
                let at = |x: usize, y: usize| p[y * from.0 + x];
                let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
                let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
                out[k * to.0 * to.1 + y * to.0 + x] = top + (bottom - top) * fy;
            }
        }
    }
    out
}
