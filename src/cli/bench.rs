//! `enet bench`: wall time over a pipelined loop, GPU time from timestamp queries.

use std::time::Instant;

use anyhow::Result;

use super::{BenchArgs, gpu, load_model};
use enet_wgpu::model::weights::synthetic_file;
use enet_wgpu::model::{Layout, Model};
use enet_wgpu::runtime::{FrameOptions, FusedConfig, Smoother, Timing, Upscaler};
use enet_wgpu::{Engine, blocking::block_on};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn run(a: BenchArgs) -> Result<()> {
    let model = match a.synthetic {
        Some(layout) => Model::from_safetensors(&synthetic_file(Layout::from(layout), 12, 1))?,
        None => load_model(a.weights.as_deref())?,
    };
    if a.frames == 0 {
        anyhow::bail!("--frames must be at least 1");
    }
    let gpu = gpu()?;
    let device_default = FusedConfig::for_device(&gpu);
    let fused = FusedConfig {
        threads: a.threads.unwrap_or(device_default.threads),
        tile_pixels: a.tile_pixels,
    };
    // Start-up as a page meets it after a device loss: every pipeline compiled, the plan's
    // buffers and bind groups made, one frame run.
    let start = Instant::now();
    let mut engine = Engine::with_config(
        &gpu,
        &model.graph,
        model.normalization,
        a.precision.resolve(&gpu),
        fused,
    )?;
    engine.set_fusion(!a.unfused);
    let engine_ms = start.elapsed().as_secs_f64() * 1e3;
    let (w, h) = a.size;
    let start = Instant::now();
    let plan = engine.plan((w, h), (w, h))?;
    let plan_ms = start.elapsed().as_secs_f64() * 1e3;
    // A fixed synthetic frame: speed does not depend on the picture.
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 31 % 251) as u8).collect();
    let wait = || gpu.device.poll(wgpu::PollType::wait_indefinitely());
    let start = Instant::now();
    plan.submit_frame(&rgba, FrameOptions::default())?;
    wait()?;
    let first_frame_ms = start.elapsed().as_secs_f64() * 1e3;
    for _ in 0..4 {
        plan.submit_frame(&rgba, FrameOptions::default())?;
    }
    wait()?;
    // Pipelined: submit every frame, wait once at the end.
    let start = Instant::now();
    for _ in 0..a.frames {
        plan.submit_frame(&rgba, FrameOptions::default())?;
    }
    wait()?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3 / a.frames as f64;
    let samples = a.frames.clamp(1, 50);
    let mut gpu_ms = Vec::new();
    if plan.has_timestamps() {
        for _ in 0..samples {
            plan.submit_frame(
                &rgba,
                FrameOptions {
                    timing: Timing::Frame,
                    ..Default::default()
                },
            )?;
            if let Some(t) = block_on(plan.read_timings())?.first() {
                gpu_ms.push(t.ms);
            }
        }
    }
    let gpu_frame = (!gpu_ms.is_empty()).then(|| median(&mut gpu_ms));
    let mut per_kernel: Vec<(String, f64)> = Vec::new();
    if a.per_kernel && plan.has_timestamps() {
        let mut acc: Vec<Vec<f64>> = Vec::new();
        for _ in 0..samples.min(10) {
            plan.submit_frame(
                &rgba,
                FrameOptions {
                    timing: Timing::PerDispatch,
                    ..Default::default()
                },
            )?;
            let t = block_on(plan.read_timings())?;
            acc.resize(t.len(), Vec::new());
            for (i, s) in t.iter().enumerate() {
                acc[i].push(s.ms);
            }
        }
        per_kernel = plan
            .dispatch_labels()
            .iter()
            .zip(acc.iter_mut())
            .map(|(l, v)| (l.to_string(), median(v)))
            .collect();
    }
    // The classes brought to an output size after each frame, timed alone (pipelined).
    let upscale_ms = match a.upscale_to {
        Some(out) => {
            let smoother = Smoother::new(&gpu.device);
            let smooth = smoother.bind(&gpu.device, &plan);
            let upscaler = Upscaler::new(&gpu.device);
            let binding = upscaler.bind(&gpu.device, &plan, smooth.prob_buffer(), out);
            let pass = || {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                smoother.encode(&gpu.queue, &mut encoder, &smooth, 0.7);
                upscaler.encode(&gpu.queue, &mut encoder, &binding, a.upsample, false);
                gpu.queue.submit([encoder.finish()]);
            };
            plan.submit_frame(&rgba, FrameOptions::default())?;
            for _ in 0..3 {
                pass();
            }
            wait()?;
            let start = Instant::now();
            for _ in 0..a.frames {
                pass();
            }
            wait()?;
            Some((out, start.elapsed().as_secs_f64() * 1e3 / a.frames as f64))
        }
        None => None,
    };
    let adapter = gpu.describe();
    if a.json {
        let out = serde_json::json!({
            "adapter": adapter,
            "size": format!("{w}x{h}"),
            "layout": model.layout.name(),
            "frames": a.frames,
            "ms_per_frame": wall_ms,
            "fps": 1e3 / wall_ms,
            "gpu_ms_per_frame": gpu_frame,
            "dispatches_per_frame": plan.dispatch_count(),
            "fused": !a.unfused,
            "precision": engine.precision().name(),
            "threads_per_workgroup": engine.threads(),
            "tile_pixels": engine.fused_config().tile_pixels,
            "multiply_adds": model.graph.multiply_adds(h, w)?,
            "gpu_memory_bytes": plan.memory_bytes(),
            "startup_ms": {
                "engine": engine_ms,
                "plan": plan_ms,
                "first_frame": first_frame_ms,
            },
            "upscale": upscale_ms.map(|((ow, oh), ms)| serde_json::json!({
                "to": format!("{ow}x{oh}"),
                "mode": a.upsample.name(),
                "ms_per_frame": ms,
                "share_of_frame": ms / wall_ms,
            })),
            "per_kernel_ms": per_kernel.iter().map(|(l, v)| serde_json::json!({"dispatch": l, "ms": v})).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        println!("adapter              {adapter}");
        println!("model                {} layout, {w}x{h}", model.layout);
        println!("precision            {}", engine.precision());
        println!(
            "fused kernels        {} invocations per workgroup, tiles of up to {} pixels",
            engine.threads(),
            engine.fused_config().tile_pixels
        );
        println!(
            "start-up ms          {engine_ms:.0} engine (weights, every pipeline), {plan_ms:.0} plan, {first_frame_ms:.0} first frame"
        );
        println!("frames               {}", a.frames);
        println!("wall ms per frame    {wall_ms:.3} (pipelined, upload included)");
        println!("frames per second    {:.1}", 1e3 / wall_ms);
        match gpu_frame {
            Some(g) => {
                println!("GPU ms per frame     {g:.3} (timestamp queries, median of {samples})")
            }
            None => println!("GPU ms per frame     n/a (the adapter has no timestamp queries)"),
        }
        println!(
            "dispatches per frame {}{}",
            plan.dispatch_count(),
            if a.unfused { " (unfused)" } else { "" }
        );
        println!(
            "GPU memory (plan)    {:.1} MiB",
            plan.memory_bytes() as f64 / (1 << 20) as f64
        );
        if let Some(((ow, oh), ms)) = upscale_ms {
            println!(
                "upscale to {ow}x{oh}  {ms:.3} ms ({}, after the frame: {:.0} % of the frame's wall time)",
                a.upsample,
                100.0 * ms / wall_ms
            );
        }
        if !per_kernel.is_empty() {
            let total: f64 = per_kernel.iter().map(|(_, v)| v).sum();
            let mut sorted = per_kernel.clone();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
            println!("slowest dispatches (of {total:.3} ms timed one pass each):");
            for (l, v) in sorted.iter().take(15) {
                println!("  {l:<24} {v:.4} ms");
            }
        }
    }
    Ok(())
}
