//! How much the class map flickers on a still, noisy camera, and how well a pan is followed,
//! for several smoothing strengths: the network on a portrait crop of a street frame (the
//! middle `W`x`H`, network at that size), fresh +-NOISE grey-level noise each frame; smoothing
//! as `shaders/smooth.wgsl` does it (its twin; the network on the CPU engine), then classes at the network's size and, by the
//! edge-aware upscale (refined first and held from frame to frame as sharp edges draw, with
//! the smoothing's strength), at 3 times that size.
//!
//! `cargo run --release --example flicker -- IMAGE 240x360 30 4`

use enet_wgpu::Model;
use enet_wgpu::cpu::CpuSegmenter;
use enet_wgpu::kernels::refine;
use enet_wgpu::kernels::twin::{self, Tensor};
use enet_wgpu::kernels::upscale::{self, Sizes, Upscale};
use enet_wgpu::model::graph::Shape;
use enet_wgpu::model::weights::SplitMix;

const STRENGTHS: [f32; 5] = [0.0, 0.7, 0.8, 0.9, 0.95];
const SCALE: usize = 3;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 4, "usage: flicker IMAGE WxH FRAMES NOISE");
    let img = image::open(&args[0])?.to_rgba8();
    let (w, h) = args[1]
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("WxH"))?;
    let (w, h): (usize, usize) = (w.parse()?, h.parse()?);
    let frames: usize = args[2].parse()?;
    let noise: f32 = args[3].parse()?;
    let model = Model::from_safetensors(
        enet_wgpu::assets::default_model().ok_or_else(|| anyhow::anyhow!("no built-in model"))?,
    )?;
    let c = model.num_classes();
    // The CPU engine: the same classes as the GPU's, many times faster without a GPU.
    let mut seg = CpuSegmenter::new(&model, None)?;
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    anyhow::ensure!(w <= iw && h <= ih, "the crop must fit the image");
    for (what, pan) in [("still, noisy", 0usize), ("pan, 2 px a frame", 2)] {
        let mut rng = SplitMix(5);
        let mut probs = vec![vec![0.0f32; c * w * h]; STRENGTHS.len()];
        let mut last: Vec<Option<(Vec<u32>, Vec<u8>)>> = vec![None; STRENGTHS.len()];
        let mut held: Vec<refine::Held> = STRENGTHS.iter().map(|_| Default::default()).collect();
        let mut changed = vec![(0usize, 0usize); STRENGTHS.len()];
        let mut agree = vec![0usize; STRENGTHS.len()];
        // The same for the refined (sharp edges) map at the network's size.
        let mut agree_refined = vec![0usize; STRENGTHS.len()];
        let out = (w * SCALE, h * SCALE);
        for k in 0..frames {
            let x0 = ((iw - w) / 2 + k * pan).min(iw - w);
            let y0 = (ih - h) / 2;
            let mut rgba = Vec::with_capacity(w * h * 4);
            for y in 0..h {
                for x in 0..w {
                    let p = img.get_pixel((x0 + x) as u32, (y0 + y) as u32).0;
                    let n = rng.uniform(-noise, noise + 1.0).floor();
                    for v in &p[..3] {
                        rgba.push((*v as f32 + n).clamp(0.0, 255.0) as u8);
                    }
                    rgba.push(255);
                }
            }
            let logits = seg.logits(&rgba, w, h, (w, h))?;
            let t = Tensor {
                shape: Shape { c, h, w },
                data: logits,
            };
            let raw = twin::argmax(&t);
            for (i, &s) in STRENGTHS.iter().enumerate() {
                let shown = twin::smooth(&t, &mut probs[i], s, k == 0);
                let sizes = Sizes {
                    net: (w, h),
                    src: (w, h),
                    out,
                    channels: c,
                };
                // Sharp edges: refined at the network's size, then the edge-aware upscale.
                let refined = held[i].refine(&probs[i], &rgba, sizes, s);
                let big = upscale::upscale(&refined, &rgba, sizes, Upscale::Edge);
                agree_refined[i] += (0..w * h)
                    .filter(|&p| {
                        let best = (0..c)
                            .max_by(|&a, &b| {
                                refined[a * w * h + p].total_cmp(&refined[b * w * h + p])
                            })
                            .unwrap_or(0);
                        best as u32 == raw[p]
                    })
                    .count();
                if let Some((a, b)) = &last[i] {
                    changed[i].0 += a.iter().zip(&shown).filter(|(x, y)| x != y).count();
                    changed[i].1 += b.iter().zip(&big).filter(|(x, y)| x != y).count();
                }
                agree[i] += shown.iter().zip(&raw).filter(|(x, y)| x == y).count();
                last[i] = Some((shown, big));
            }
        }
        println!("{what}: {w}x{h}, {frames} frames, noise +-{noise}");
        let pairs = (frames - 1) as f64;
        let base = changed[0];
        for (i, &s) in STRENGTHS.iter().enumerate() {
            let (n, b) = changed[i];
            println!(
                "  strength {s:.2}: {:.3} % change class between frames at the network size ({:.0} % of unsmoothed), {:.3} % at {}x{} edge-aware ({:.0} %); agreement with the frame's own classes {:.2} % (refined: {:.2} %)",
                100.0 * n as f64 / pairs / (w * h) as f64,
                100.0 * n as f64 / base.0.max(1) as f64,
                100.0 * b as f64 / pairs / (out.0 * out.1) as f64,
                out.0,
                out.1,
                100.0 * b as f64 / base.1.max(1) as f64,
                100.0 * agree[i] as f64 / frames as f64 / (w * h) as f64,
                100.0 * agree_refined[i] as f64 / frames as f64 / (w * h) as f64,
            );
        }
    }
    Ok(())
}
