//! Soak test: many frames through one plan, with the process's memory sampled after warm-up.
//!
//!     cargo run --release --example soak -- [FRAMES] [WxH]      (default 10000 64x48)
//!
//! Prints resident memory (RSS) at each tenth of the run and the GPU memory the plan holds,
//! and exits with an error if RSS grew by more than 8 MiB after the first tenth.

use std::time::Instant;

use enet_wgpu::model::weights::synthetic_file;
use enet_wgpu::model::{Layout, Model};
use enet_wgpu::runtime::FrameOptions;
use enet_wgpu::{Engine, blocking};

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let frames: usize = args.first().map_or(Ok(10_000), |v| v.parse())?;
    let (w, h) = args
        .get(1)
        .and_then(|s| s.split_once('x'))
        .map_or(Ok((64, 48)), |(w, h)| {
            Ok::<_, anyhow::Error>((w.parse()?, h.parse()?))
        })?;
    let model = Model::from_safetensors(&synthetic_file(Layout::Paper, 12, 1))?;
    let gpu = blocking::gpu()?;
    let engine = Engine::new(&gpu, &model.graph, model.normalization)?;
    let plan = engine.plan((w, h), (w, h))?;
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 256) as u8).collect();
    println!(
        "adapter {}, {w}x{h}, {frames} frames, plan GPU memory {} KiB",
        gpu.describe(),
        plan.memory_bytes() / 1024
    );
    let start = Instant::now();
    let mut baseline = None;
    let mut worst = 0i64;
    for i in 1..=frames {
        // Every 100th frame reads its class map back, as a caller occasionally would.
        let read = i % 100 == 0;
        plan.submit_frame(
            &rgba,
            FrameOptions {
                read_classes: read,
                ..Default::default()
            },
        )?;
        if read {
            let classes = blocking::block_on(plan.read_classes())?;
            anyhow::ensure!(classes.len() == w * h);
        } else {
            gpu.device.poll(wgpu::PollType::wait_indefinitely())?;
        }
        if i % (frames / 10).max(1) == 0 {
            let rss = rss_kib();
            let base = *baseline.get_or_insert(rss);
            worst = worst.max(rss as i64 - base as i64);
            println!(
                "frame {i:>6}: RSS {:>7} KiB ({:+} KiB since frame {}), {:.2} ms/frame",
                rss,
                rss as i64 - base as i64,
                frames / 10,
                start.elapsed().as_secs_f64() * 1e3 / i as f64
            );
        }
    }
    println!(
        "largest RSS growth after warm-up: {worst} KiB; plan GPU memory unchanged at {} KiB",
        plan.memory_bytes() / 1024
    );
    anyhow::ensure!(worst <= 8 * 1024, "resident memory grew by {worst} KiB");
    Ok(())
}
