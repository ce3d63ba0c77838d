//! Binding: every call's parameters in one uniform buffer (each at its own aligned offset),
//! its resources in the order its kernel's binding struct listed them, its pipeline found.

use std::num::NonZeroU64;

use super::Dispatch;
use super::memory::{Resources, tensor_bytes};
use crate::kernels::{Call, Resource};
use crate::model::graph::Shape;
use crate::runtime::{Engine, EngineError};

/// The dispatches with their bind groups: every dispatch's parameters in one uniform buffer,
/// each at its own aligned offset, and its tensors in the buffers `tensor_buffer` assigns.
pub(super) fn bind(
    engine: &Engine,
    calls: Vec<Call>,
    res: &Resources,
    tensor_buffer: &[usize],
    shapes: &[Shape],
) -> Result<Vec<Dispatch>, EngineError> {
    let device = &engine.gpu.device;
    let graph = &engine.graph;
    let align = device.limits().min_uniform_buffer_offset_alignment as usize;
    let slot = calls
        .iter()
        .map(|d| d.params.len())
        .max()
        .unwrap_or(16)
        .next_multiple_of(align);
    let mut uniform_data = vec![0u8; slot * calls.len()];
    for (i, d) in calls.iter().enumerate() {
        uniform_data[i * slot..i * slot + d.params.len()].copy_from_slice(&d.params);
    }
    let uniforms = {
        use wgpu::util::DeviceExt;
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dispatch parameters"),
            contents: &uniform_data,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    };
    calls
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let pipeline = engine.pipeline(&d.pipeline)?.clone();
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset: (i * slot) as u64,
                    size: NonZeroU64::new(d.params.len() as u64),
                }),
            }];
            for (b, r) in d.bindings.iter().enumerate() {
                let resource = match r {
                    Resource::Tensor(t) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &res.buffers[tensor_buffer[*t]],
                        offset: 0,
                        size: NonZeroU64::new(
                            tensor_bytes(graph, *t, shapes[*t], engine.precision).max(4),
                        ),
                    }),
                    Resource::Weights => engine.weights.as_entire_binding(),
                    Resource::Aux => engine.aux.as_entire_binding(),
                    Resource::Classes => res.classes.as_entire_binding(),
                    Resource::Scratch => res.scratch.as_entire_binding(),
                    Resource::Source => wgpu::BindingResource::TextureView(&res.source_view),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: b as u32 + 1,
                    resource,
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&d.label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            Ok(Dispatch {
                label: d.label,
                pipeline,
                bind_group,
                groups: d.groups,
            })
        })
        .collect()
}
