//! `enet info`: adapters, the chosen one, its features and limits.

use anyhow::Result;

use super::gpu;

pub fn run() -> Result<()> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
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
    let gpu = gpu()?;
    let features = gpu.adapter.features();
    println!("chosen: {}", gpu.describe());
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
