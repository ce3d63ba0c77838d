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
        use enet_wgpu::kernels::bottleneck::{CPU_THREADS, THREADS};
        use enet_wgpu::kernels::frame_initial::FRAME_TILE;
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
            assert_eq!(
                shared as usize,
                enet_wgpu::kernels::bottleneck::TILE_VEC4 * 16
            );
        }
        if k.name == kernels::UPSAMPLE.name {
            assert_eq!(
                shared as usize,
                enet_wgpu::kernels::upsample::UP_TILE_VEC4 * 16
            );
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

/// Each kernel's Rust parameter struct (in its module under `kernels`) has its WGSL struct's
/// fields, at the same offsets, and the same size.
#[test]
fn parameter_structs_match_their_shaders() {
    let mut checked = 0;
    for (kernels, name, fields, offsets, size) in kernels::all_params() {
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
    // Every kernel has a parameter block.
    assert_eq!(checked, kernels::ALL.len());
}

fn parse_and_validate(k: kernels::KernelSource) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(k.wgsl).expect("parses");
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .expect("validates");
    (module, info)
}

/// Each kernel's binding struct (in its module under `kernels`) names, in order, the globals
/// its entry point uses at `@binding(1)`, `@binding(2)`, ..., each with its access; binding 0
/// is the parameters `p`. Every entry point of every kernel has one. So two bindings swapped
/// in a struct or in the WGSL fail here, not as wrong numbers.
#[test]
fn binding_structs_match_their_shaders() {
    use kernels::Access;
    let mut seen = std::collections::HashSet::new();
    for (entries, names) in kernels::all_bindings() {
        for &(k, entry) in entries {
            let what = format!("{} {entry}", k.name);
            let (module, info) = parse_and_validate(k);
            let index = module
                .entry_points
                .iter()
                .position(|e| e.name == entry)
                .unwrap_or_else(|| panic!("{what}: no such entry point"));
            let uses = info.get_entry_point(index);
            let mut bound: Vec<_> = module
                .global_variables
                .iter()
                .filter(|(h, g)| g.binding.is_some() && !uses[*h].is_empty())
                .map(|(_, g)| (g.binding.unwrap(), g))
                .collect();
            bound.sort_by_key(|(b, _)| b.binding);
            let numbers: Vec<(u32, u32)> =
                bound.iter().map(|(b, _)| (b.group, b.binding)).collect();
            let want: Vec<(u32, u32)> = (0..=names.len() as u32).map(|b| (0, b)).collect();
            assert_eq!(numbers, want, "{what}: bindings in use");
            let (_, params) = &bound[0];
            assert_eq!(params.name.as_deref(), Some("p"), "{what}");
            assert_eq!(params.space, naga::AddressSpace::Uniform, "{what}");
            for ((_, g), (name, access)) in bound[1..].iter().zip(names.iter()) {
                let wgsl_access = match g.space {
                    naga::AddressSpace::Storage { access }
                        if access.contains(naga::StorageAccess::STORE) =>
                    {
                        Access::ReadWrite
                    }
                    naga::AddressSpace::Storage { .. } => Access::Read,
                    naga::AddressSpace::Handle
                        if matches!(module.types[g.ty].inner, naga::TypeInner::Image { .. }) =>
                    {
                        Access::Texture
                    }
                    other => panic!("{what}: {name} in {other:?}"),
                };
                assert_eq!(
                    (g.name.as_deref().unwrap_or(""), wgsl_access),
                    (*name, *access),
                    "{what}: binding {} of the struct",
                    g.binding.as_ref().unwrap().binding
                );
            }
            assert!(seen.insert((k.name, entry)), "{what} bound twice");
        }
    }
    for k in kernels::ALL {
        let (module, _) = parse_and_validate(k);
        for e in &module.entry_points {
            assert!(
                seen.contains(&(k.name, e.name.as_str())),
                "{} {}: no binding struct",
                k.name,
                e.name
            );
        }
    }
}

/// The fused kernels' specialisations set exactly the WGSL's overrides, for every kind of
/// block the built-in and the paper's layouts fuse.
#[test]
fn specialisations_set_every_override() {
    use enet_wgpu::model::Layout;
    use enet_wgpu::model::weights::synthetic_graph;
    use enet_wgpu::runtime::fuse::{self, Step};
    for layout in [Layout::Paper, Layout::PytorchEnet] {
        let g = synthetic_graph(layout, 12);
        for max in fuse::TILE_PIXELS {
            for step in fuse::steps_tiled(&g, max) {
                let (kernel, constants) = match step {
                    Step::Bottleneck(b) => (kernels::BOTTLENECK, b.shape(&g).constants(64)),
                    Step::Upsample(u) => (kernels::UPSAMPLE, u.shape(&g).constants(64)),
                    _ => continue,
                };
                let module = naga::front::wgsl::parse_str(kernel.wgsl).expect("parses");
                let mut wgsl: Vec<&str> = module
                    .overrides
                    .iter()
                    .filter_map(|(_, o)| o.name.as_deref())
                    .collect();
                let mut rust: Vec<&str> = constants.iter().map(|(name, _)| *name).collect();
                wgsl.sort_unstable();
                rust.sort_unstable();
                assert_eq!(rust, wgsl, "{}", kernel.name);
            }
        }
    }
}
