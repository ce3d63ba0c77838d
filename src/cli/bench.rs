//! `enet bench`: wall time over a pipelined loop, GPU time from timestamp queries.

use std::time::Instant;

use anyhow::Result;

use super::{BenchArgs, load_model};
use enet_wgpu::cpu::CpuEngine;
use enet_wgpu::model::weights::synthetic_file;
use enet_wgpu::model::{Layout, Model};
use enet_wgpu::runtime::tune::{self, Config, Trial};
use enet_wgpu::runtime::{FrameOptions, FusedConfig, Refiner, Smoother, Timing, Upscaler};
use enet_wgpu::{Engine, blocking::block_on};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// What `--tune` measured and chose.
struct Tuning {
    trial_size: (usize, usize),
    seconds: f64,
    trials: Vec<Trial>,
    chosen: Config,
    /// Where the choice was remembered, or why it was not.
    saved: std::result::Result<String, String>,
}

impl Tuning {
    fn json(&self) -> serde_json::Value {
        let (w, h) = self.trial_size;
        serde_json::json!({
            "trial_size": format!("{w}x{h}"),
            "seconds": self.seconds,
            "chosen": self.chosen.name(),
            "remembered_in": self.saved.as_ref().ok(),
            "trials": self.trials.iter().map(|t| serde_json::json!({
                "engine": t.config.name(),
                "ms_per_frame": t.ms.as_ref().ok(),
                "error": t.ms.as_ref().err(),
                "chosen": t.config == self.chosen,
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self) {
        let (w, h) = self.trial_size;
        println!(
            "tuning: every configuration timed at {w}x{h} ({:.1} s)",
            self.seconds
        );
        for t in &self.trials {
            let ms = match &t.ms {
                Ok(ms) => format!("{ms:10.3} ms"),
                Err(e) => format!("failed: {e}"),
            };
            let mark = if t.config == self.chosen {
                "  <- chosen"
            } else {
                ""
            };
            println!("  {:<20} {ms}{mark}", t.config.name());
        }
        match &self.saved {
            Ok(path) => println!("remembered in {path} for segment and eval"),
            Err(e) => println!("not remembered: {e}"),
        }
    }
}

/// Times every configuration the device can run, remembers the fastest for `a.size`. On a
/// CPU emulation the trials run at half the size unless told otherwise.
fn tune_here(gpu: &enet_wgpu::Gpu, model: &Model, a: &BenchArgs) -> Result<Tuning> {
    let emulated = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let half = |s: usize| (s / 2 / 8 * 8).max(8);
    let trial_size = a.trial_size.unwrap_or(if emulated {
        (half(a.size.0), half(a.size.1))
    } else {
        a.size
    });
    let candidates = tune::candidates(tune::Abilities::of(gpu));
    let start = Instant::now();
    let mut stopwatch = tune::Stopwatch::new(gpu, model, trial_size);
    let (trials, best) = tune::choose(&candidates, 5, |c| stopwatch.frame_ms(c));
    drop(stopwatch);
    let seconds = start.elapsed().as_secs_f64();
    let Some(chosen) = best else {
        anyhow::bail!(
            "no configuration could run here: {}",
            trials
                .iter()
                .filter_map(|t| t
                    .ms
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", t.config.name())))
                .collect::<Vec<_>>()
                .join("; ")
        );
    };
    let ms = trials
        .iter()
        .find(|t| t.config == chosen)
        .and_then(|t| t.ms.clone().ok())
        .unwrap_or(f64::NAN);
    let (mut cache, note) = tune::load_cache();
    if let Some(note) = note {
        eprintln!("note: the tuning cache {note}");
    }
    cache.insert(tune::TuneKey::new(gpu, a.size), chosen, ms);
    let saved = tune::save_cache(&cache)
        .map(|p| p.display().to_string())
        .map_err(|e| e.to_string());
    Ok(Tuning {
        trial_size,
        seconds,
        trials,
        chosen,
        saved,
    })
}

pub fn run(a: BenchArgs) -> Result<()> {
    let model = match a.synthetic {
        Some(layout) => Model::from_safetensors(&synthetic_file(Layout::from(layout), 12, 1))?,
        None => load_model(a.weights.as_deref())?,
    };
    if a.frames == 0 {
        anyhow::bail!("--frames must be at least 1");
    }
    let gpu_only = super::backend::gpu_only(&[("--precision f16", Some(a.precision))])
        .or(a.tune.then_some("--tune"))
        .or(a.upscale_to.map(|_| "--upscale-to"))
        .or(a.unfused.then_some("--unfused"))
        .or(a.threads.map(|_| "--threads"));
    let gpu = match super::backend::choose(a.backend, gpu_only)? {
        super::backend::Chosen::Gpu(gpu) => gpu,
        super::backend::Chosen::Cpu => return run_cpu(&a, &model),
    };
    let device_default = FusedConfig::for_device(&gpu);
    let mut config = Config {
        fused: !a.unfused,
        precision: a.precision.resolve(&gpu),
        threads: a.threads.unwrap_or(device_default.threads),
        tile_pixels: a.tile_pixels,
    };
    let tuning = if a.tune {
        let t = tune_here(&gpu, &model, &a)?;
        config = t.chosen;
        Some(t)
    } else {
        None
    };
    // Start-up as a page meets it after a device loss: every pipeline it runs compiled, the plan's
    // buffers and bind groups made, one frame run.
    let start = Instant::now();
    let engine = Engine::for_config(&gpu, &model.graph, model.normalization, config)?;
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
            let refiner = Refiner::new(&gpu.device);
            let refine = refiner.bind(&gpu.device, &gpu.queue, &plan, smooth.prob_buffer());
            let upscaler = Upscaler::new(&gpu.device);
            let binding = upscaler.bind(&gpu.device, &plan, refine.prob_buffer(), out);
            let refines = enet_wgpu::kernels::refine::applies(a.upsample, (w, h), out);
            let pass = || {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                smoother.encode(&gpu.queue, &mut encoder, &smooth, 0.7);
                if refines {
                    refiner.encode(&gpu.queue, &mut encoder, &refine, 0.7);
                } else {
                    refiner.encode_copy(&mut encoder, &refine);
                }
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
            "backend": "gpu",
            "adapter": adapter,
            "size": format!("{w}x{h}"),
            "layout": model.layout.name(),
            "frames": a.frames,
            "ms_per_frame": wall_ms,
            "fps": 1e3 / wall_ms,
            "gpu_ms_per_frame": gpu_frame,
            "dispatches_per_frame": plan.dispatch_count(),
            "fused": config.fused,
            "engine": config.name(),
            "tuning": tuning.as_ref().map(Tuning::json),
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
                "refined": enet_wgpu::kernels::refine::applies(a.upsample, (w, h), (ow, oh)),
                "ms_per_frame": ms,
                "share_of_frame": ms / wall_ms,
            })),
            "per_kernel_ms": per_kernel.iter().map(|(l, v)| serde_json::json!({"dispatch": l, "ms": v})).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        if let Some(t) = &tuning {
            t.print();
        }
        println!("adapter              {adapter}");
        println!("model                {} layout, {w}x{h}", model.layout);
        println!("precision            {}", engine.precision());
        println!(
            "fused kernels        {} invocations per workgroup, tiles of up to {} pixels",
            engine.threads(),
            engine.fused_config().tile_pixels
        );
        println!(
            "start-up ms          {engine_ms:.0} engine (weights, its pipelines), {plan_ms:.0} plan, {first_frame_ms:.0} first frame"
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
            if config.fused { "" } else { " (unfused)" }
        );
        println!(
            "GPU memory (plan)    {:.1} MiB",
            plan.memory_bytes() as f64 / (1 << 20) as f64
        );
        if let Some(((ow, oh), ms)) = upscale_ms {
            println!(
                "upscale to {ow}x{oh}  {ms:.3} ms ({}{}, after the frame: {:.0} % of the frame's wall time)",
                a.upsample,
                if enet_wgpu::kernels::refine::applies(a.upsample, (w, h), (ow, oh)) {
                    ", refinement included"
                } else {
                    ""
                },
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

/// `enet bench --backend cpu`: frames one after another (each waits for the last), timed
/// whole: the frame in, the network, the class map out.
fn run_cpu(a: &BenchArgs, model: &Model) -> Result<()> {
    let start = Instant::now();
    let engine = CpuEngine::new(&model.graph, model.normalization, a.cpu_threads)?;
    let engine_ms = start.elapsed().as_secs_f64() * 1e3;
    let (w, h) = a.size;
    let start = Instant::now();
    let mut plan = engine.plan((w, h), (w, h))?;
    let plan_ms = start.elapsed().as_secs_f64() * 1e3;
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 31 % 251) as u8).collect();
    let start = Instant::now();
    engine.run(&mut plan, &rgba)?;
    let first_frame_ms = start.elapsed().as_secs_f64() * 1e3;
    for _ in 0..2 {
        engine.run(&mut plan, &rgba)?;
    }
    let mut frames = Vec::with_capacity(a.frames);
    for _ in 0..a.frames {
        let t = Instant::now();
        engine.run(&mut plan, &rgba)?;
        frames.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mean = frames.iter().sum::<f64>() / frames.len() as f64;
    let med = median(&mut frames);
    let mut per_step: Vec<(String, f64)> = Vec::new();
    if a.per_kernel {
        let labels = engine.step_labels();
        let mut times = vec![0.0; labels.len()];
        let rounds = a.frames.clamp(1, 20);
        for _ in 0..rounds {
            engine.run_timed(&mut plan, &rgba, Some(&mut times))?;
        }
        per_step = labels
            .into_iter()
            .zip(times)
            .map(|(l, t)| (l, t / rounds as f64))
            .collect();
    }
    let describe = engine.describe();
    if a.json {
        let out = serde_json::json!({
            "backend": "cpu",
            "engine": describe,
            "simd": engine.isa().name(),
            "threads": engine.threads(),
            "size": format!("{w}x{h}"),
            "layout": model.layout.name(),
            "frames": a.frames,
            "ms_per_frame": med,
            "mean_ms_per_frame": mean,
            "fps": 1e3 / med,
            "precision": "f32",
            "multiply_adds": model.graph.multiply_adds(h, w)?,
            "memory_bytes": plan.memory_bytes(),
            "per_kernel_ms": per_step.iter().map(|(l, v)| serde_json::json!({"step": l, "ms": v})).collect::<Vec<_>>(),
            "startup_ms": {
                "engine": engine_ms,
                "plan": plan_ms,
                "first_frame": first_frame_ms,
            },
        });
        println!("{out}");
    } else {
        println!("engine               {describe}");
        println!("model                {} layout, {w}x{h}", model.layout);
        println!("precision            f32");
        println!(
            "start-up ms          {engine_ms:.0} engine (weights packed), {plan_ms:.0} plan, {first_frame_ms:.0} first frame"
        );
        println!("frames               {}", a.frames);
        println!(
            "ms per frame         {med:.3} median, {mean:.3} mean (frame in to class map out)"
        );
        println!("frames per second    {:.1}", 1e3 / med);
        println!(
            "memory (plan)        {:.1} MiB",
            plan.memory_bytes() as f64 / (1 << 20) as f64
        );
        if !per_step.is_empty() {
            let total: f64 = per_step.iter().map(|(_, v)| v).sum();
            let mut sorted = per_step.clone();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
            println!("slowest steps (of {total:.3} ms, mean of frames timed step by step):");
            for (l, v) in sorted.iter().take(15) {
                println!("  {l:<32} {v:.3} ms");
            }
        }
    }
    Ok(())
}
