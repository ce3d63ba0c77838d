//! naga parses and validates every kernel, and each stays within WebGPU's default limits so
//! it also runs in phone browsers.

use enet_wgpu::kernels;

#[test]
fn every_shader_parses_validates_and_fits_default_limits() {
    let limits = wgpu::Limits::default();
    for k in kernels::ALL {
        let module = naga::front::wgsl::parse_str(k.wgsl)
            .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(k.wgsl)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(k.wgsl)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{}: entry point main",
            k.name
        );
        // The fused kernels map their invocations onto a tile themselves, as many as the
        // engine chooses per device (a pipeline constant, at most WebGPU's default 256).
        use enet_wgpu::runtime::fuse::{CPU_THREADS, FRAME_TILE, THREADS};
        let fused = k.name == kernels::BOTTLENECK.name || k.name == kernels::UPSAMPLE.name;
        let want = if fused {
            [THREADS.max(CPU_THREADS) as u32, 1]
        } else if k.name == kernels::FRAME_INITIAL.name {
            [FRAME_TILE as u32; 2]
        } else {
            kernels::WORKGROUP
        };
        let mut z = 1;
        for entry in &module.entry_points {
            assert_eq!(entry.stage, naga::ShaderStage::Compute, "{}", k.name);
            let [x, y, ez] = entry.workgroup_size;
            if fused {
                let o = entry
                    .workgroup_size_overrides
                    .expect("an overridable workgroup size");
                assert!(
                    o[0].is_some() && o[1].is_none() && o[2].is_none(),
                    "{}",
                    k.name
                );
                assert_eq!([y, ez], [1, 1], "{}", k.name);
            } else {
                assert_eq!(
                    [x, y],
                    want,
                    "{} {}: workgroup size matches the runtime's dispatch math",
                    k.name,
                    entry.name
                );
            }
            z = ez;
        }
        let [x, y] = want;
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let shared: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        assert!(
            shared <= limits.max_compute_workgroup_storage_size,
            "{}: {shared} bytes of workgroup memory",
            k.name
        );
        if k.name == kernels::BOTTLENECK.name {
            assert_eq!(shared as usize, enet_wgpu::runtime::fuse::TILE_VEC4 * 16);
        }
        if k.name == kernels::UPSAMPLE.name {
            assert_eq!(shared as usize, enet_wgpu::runtime::fuse::UP_TILE_VEC4 * 16);
        }
        assert!(
            x * y * z <= limits.max_compute_invocations_per_workgroup,
            "{}",
            k.name
        );
        let storage = module
            .global_variables
            .iter()
            .filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. }))
            .count() as u32;
        assert!(
            storage <= limits.max_storage_buffers_per_shader_stage,
            "{}: {storage} storage buffers",
            k.name
        );
        let shared: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
            .sum();
        assert!(
            shared <= limits.max_compute_workgroup_storage_size,
            "{}: {shared} bytes of workgroup memory",
            k.name
        );
    }
}

#[test]
fn overlay_shader_validates() {
    let src = enet_wgpu::runtime::overlay::SHADER;
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("overlay: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("overlay: {}", e.emit_to_string(src)));
    let stages: Vec<_> = module
        .entry_points
        .iter()
        .map(|e| (e.name.as_str(), e.stage))
        .collect();
    assert!(stages.contains(&("vs_main", naga::ShaderStage::Vertex)));
    assert!(stages.contains(&("fs_main", naga::ShaderStage::Fragment)));
}

#[test]
fn every_shader_file_is_used() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        assert!(
            kernels::ALL.iter().any(|k| k.wgsl.contains(text.trim()))
                || enet_wgpu::runtime::overlay::SHADER.contains(text.trim()),
            "shaders/{name} is not part of any kernel"
        );
    }
}

/// Each kernel's Rust parameter struct (`runtime::params`) has its WGSL struct's fields, at
/// the same offsets, and the same size.
#[test]
fn parameter_structs_match_their_shaders() {
    let mut checked = 0;
    for (kernels, name, fields, offsets, size) in enet_wgpu::runtime::params::all() {
        for k in kernels {
            let module = naga::front::wgsl::parse_str(k.wgsl).expect("parses");
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let (handle, ty) = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{}: no struct {name}", k.name));
            let naga::TypeInner::Struct { members, span } = &ty.inner else {
                panic!("{}: {name} is not a struct", k.name)
            };
            let wgsl: Vec<(&str, usize)> = members
                .iter()
                .map(|m| (m.name.as_deref().unwrap_or(""), m.offset as usize))
                .collect();
            let rust: Vec<(&str, usize)> = fields
                .iter()
                .copied()
                .zip(offsets.iter().copied())
                .collect();
            assert_eq!(wgsl, rust, "{}: {name}", k.name);
            assert_eq!(*span as usize, size, "{}: {name} size", k.name);
            assert_eq!(layouter[handle].size as usize, size);
            // It is the uniform the kernel reads.
            assert!(
                module
                    .global_variables
                    .iter()
                    .any(|(_, g)| g.space == naga::AddressSpace::Uniform && g.ty == handle),
                "{}: {name} is not its uniform",
                k.name
            );
            checked += 1;
        }
    }
    // Every kernel with a parameter block but the smoothing pass (whose parameters live with
    // it in runtime::smooth).
    assert_eq!(checked, enet_wgpu::kernels::ALL.len() - 1);
}
