//! `enet info`: adapters, the chosen one, its features and limits.

use anyhow::Result;

use super::{gpu, load_model};

/// What the embedded model is and where it came from (its provenance metadata).
fn builtin_model() -> Result<()> {
    let Some(bytes) = enet_wgpu::assets::default_model() else {
        println!("built-in model: none in this build (pass --weights FILE)");
        return Ok(());
    };
    let m = load_model(None)?;
    let prov: serde_json::Value = m
        .provenance
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let field = |k: &str| prov.get(k).filter(|v| !v.is_null());
    println!(
        "built-in model: {} ({} KiB, {}), ENet {} layout, {} classes, {} parameters",
        enet_wgpu::assets::DEFAULT_MODEL_FILE,
        bytes.len() / 1024,
        field("dtype").and_then(|v| v.as_str()).unwrap_or("f32"),
        m.layout,
        m.num_classes(),
        m.parameter_count()
    );
    if let Some(d) = field("data").and_then(|v| v.as_str()) {
        println!("  trained on {d}");
    }
    let mut how = Vec::new();
    if let Some(e) = field("epochs") {
        how.push(format!("{e} epochs"));
    }
    if let Some(e) = field("chosen_epoch") {
        how.push(format!("chosen at epoch {e}"));
    }
    if let Some(h) = field("hardware").and_then(|v| v.as_str()) {
        how.push(format!("on {h}"));
    }
    if let Some(t) = field("torch").and_then(|v| v.as_str()) {
        how.push(format!("PyTorch {t}"));
    }
    if !how.is_empty() {
        println!("  {}", how.join(", "));
    }
    if let Some(v) = field("val_miou").and_then(|v| v.as_f64()) {
        println!("  val class mIoU {v:.4} (PyTorch, at training time)");
    }
    Ok(())
}

pub fn run() -> Result<()> {
    builtin_model()?;
    let mut adapters = Vec::new();
    for backends in enet_wgpu::runtime::backend_choices() {
        adapters =
            pollster::block_on(enet_wgpu::runtime::instance(backends).enumerate_adapters(backends));
        if !adapters.is_empty() {
            break;
        }
    }
    println!("adapters:");
    if adapters.is_empty() {
        println!("  (none)");
    }
    for a in &adapters {
        let i = a.get_info();
        println!(
            "  {} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        );
    }
    let threads = enet_wgpu::cpu::default_threads();
    println!(
        "cpu engine: {} SIMD, {threads} thread{}",
        enet_wgpu::cpu::Isa::detect().name(),
        if threads == 1 { "" } else { "s" }
    );
    let gpu = match gpu() {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("--backend auto runs: the CPU engine (no GPU: {e:#})");
            return Ok(());
        }
    };
    let features = gpu.adapter.features();
    println!("chosen: {}", gpu.describe());
    println!(
        "--backend auto runs: {}",
        if super::backend::is_emulation(&gpu) {
            "the CPU engine (this GPU is an emulation on the CPU)"
        } else {
            "the GPU"
        }
    );
    println!("features:");
    for (name, f) in [
        ("timestamp-query", wgpu::Features::TIMESTAMP_QUERY),
        (
            "timestamp-query-inside-passes",
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        ),
        ("shader-f16", wgpu::Features::SHADER_F16),
        ("subgroups", wgpu::Features::SUBGROUP),
    ] {
        println!(
            "  {name:<30} {}",
            if features.contains(f) { "yes" } else { "no" }
        );
    }
    let l = gpu.device.limits();
    println!("limits:");
    for (name, v) in [
        (
            "max_storage_buffer_binding_size",
            l.max_storage_buffer_binding_size as u64,
        ),
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage as u64,
        ),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension as u64,
        ),
        (
            "max_texture_dimension_2d",
            l.max_texture_dimension_2d as u64,
        ),
    ] {
        println!("  {name:<40} {v}");
    }
    Ok(())
}
