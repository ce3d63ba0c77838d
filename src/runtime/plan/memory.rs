//! Memory: which buffer each tensor lives in (tensors whose lifetimes do not overlap share
//! one), how many bytes each takes, and the buffers and textures a plan binds.

use crate::kernels::{Precision, layout};
use crate::model::graph::{DType, Graph, Shape, TensorId};
use crate::runtime::fuse::{self, Step};

/// Liveness-based buffer sharing: each tensor a dispatch writes gets a buffer (in bytes, the
/// sizes returned), reused once the tensor's last reader ran; tensors that live only inside
/// fused dispatches get none (`usize::MAX`).
pub(super) fn assign_buffers(
    graph: &Graph,
    shapes: &[Shape],
    steps: &[Step],
    precision: Precision,
) -> (Vec<usize>, Vec<u64>) {
    let last = fuse::last_use(graph, steps);
    let written = fuse::written(graph, steps);
    let mut sizes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut tensor_buffer = vec![usize::MAX; shapes.len()];
    let mut assign = |t: usize, tensor_buffer: &mut Vec<usize>, free: &mut Vec<usize>| {
        let need = tensor_bytes(graph, t, shapes[t], precision).max(16);
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| sizes[**b] >= need)
            .min_by_key(|(_, b)| sizes[**b])
            .map(|(i, _)| i);
        // None fits: grow the largest free buffer (none exists yet) rather than add one.
        let largest = || {
            free.iter()
                .enumerate()
                .max_by_key(|(_, b)| sizes[**b])
                .map(|(i, _)| i)
        };
        tensor_buffer[t] = match best.or_else(largest) {
            Some(i) => {
                let b = free.swap_remove(i);
                sizes[b] = sizes[b].max(need);
                b
            }
            None => {
                sizes.push(need);
                sizes.len() - 1
            }
        };
    };
    // The tensors whose last reader is each op (a fused dispatch reads its inputs at its last
    // op, which need not take them as inputs itself).
    let mut dies: Vec<Vec<usize>> = vec![Vec::new(); graph.ops.len()];
    for (t, l) in last.iter().enumerate() {
        if let Some(i) = *l
            && t != graph.output
        {
            dies[i].push(t);
        }
    }
    assign(0, &mut tensor_buffer, &mut free);
    for (i, op) in graph.ops.iter().enumerate() {
        for t in op.outputs() {
            if written[t] {
                assign(t, &mut tensor_buffer, &mut free);
            }
        }
        for &t in &dies[i] {
            if tensor_buffer[t] != usize::MAX {
                free.push(tensor_buffer[t]);
            }
        }
    }
    (tensor_buffer, sizes)
}

/// Bytes of tensor `t` of `shape` in memory: activations at the storage precision in groups
/// of 4 channels ([`layout`]), indices as u32 planes; rounded up to 4, as buffer copies and
/// bindings need.
pub(super) fn tensor_bytes(graph: &Graph, t: TensorId, shape: Shape, precision: Precision) -> u64 {
    let bytes = match graph.tensors[t].dtype {
        DType::F32 => layout::stored_len(shape) * precision.bytes(),
        _ => shape.len() * 4,
    };
    (bytes as u64).next_multiple_of(4)
}

/// The memory a plan's dispatches bind: the activation buffers (shared by tensors whose
/// lifetimes do not overlap), the source frame, the class map and its readback.
pub(super) struct Resources {
    pub(super) buffers: Vec<wgpu::Buffer>,
    pub(super) source: wgpu::Texture,
    pub(super) source_view: wgpu::TextureView,
    pub(super) classes: wgpu::Buffer,
    pub(super) classes_readback: wgpu::Buffer,
    /// Bound where a dispatch writes nothing ([`Resource::Scratch`](crate::kernels::Resource::Scratch)).
    pub(super) scratch: wgpu::Buffer,
}

impl Resources {
    pub(super) fn new(
        device: &wgpu::Device,
        sizes: &[u64],
        source: (usize, usize),
        class_bytes: u64,
    ) -> Self {
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let buffers = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                buffer(
                    &format!("activations {i}"),
                    size,
                    wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                )
            })
            .collect();
        let source = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("source frame"),
            size: wgpu::Extent3d {
                width: source.0 as u32,
                height: source.1 as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            // RENDER_ATTACHMENT: browsers copy camera frames in with copyExternalImageToTexture.
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        Resources {
            buffers,
            source_view: source.create_view(&Default::default()),
            source,
            classes: buffer(
                "class map",
                class_bytes,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            classes_readback: buffer(
                "class map readback",
                class_bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            scratch: buffer("unused binding", 16, wgpu::BufferUsages::STORAGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;
    use crate::model::weights::synthetic_graph;

    /// Replays the steps in order: no dispatch may write a buffer that holds a tensor some
    /// dispatch (itself included) still reads, or the logits.
    fn check_no_live_tensor_is_overwritten(
        g: &Graph,
        steps: &[fuse::Step],
        tensor_buffer: &[usize],
    ) {
        let mut last_read = vec![None; g.tensors.len()];
        for (k, s) in steps.iter().enumerate() {
            for t in s.reads(g) {
                last_read[t] = Some(k);
            }
        }
        let mut holds: std::collections::HashMap<usize, usize> = Default::default();
        holds.insert(tensor_buffer[0], 0);
        for (k, s) in steps.iter().enumerate() {
            for t in s.writes(g) {
                let b = tensor_buffer[t];
                assert_ne!(
                    b,
                    usize::MAX,
                    "step {k} writes tensor {t}, which has no buffer"
                );
                if let Some(&u) = holds.get(&b) {
                    assert!(u != g.output, "step {k} overwrites the logits");
                    assert!(
                        last_read[u].is_none_or(|r| r < k),
                        "step {k} ({s:?}) writes tensor {t} over tensor {u}, read until step {:?}",
                        last_read[u]
                    );
                }
                holds.insert(b, t);
            }
        }
    }

    #[test]
    fn buffers_are_shared_safely_and_fusion_needs_no_more_memory() {
        for layout in [Layout::Paper, Layout::PytorchEnet] {
            let g = synthetic_graph(layout, 12);
            for (w, h) in [(480, 360), (64, 48), (1024, 512)] {
                let shapes = g.shapes(h, w).unwrap();
                let mut total = Vec::new();
                for steps in [fuse::unfused(&g), fuse::steps(&g)] {
                    for precision in [Precision::F32, Precision::F16] {
                        let (tensor_buffer, sizes) = assign_buffers(&g, &shapes, &steps, precision);
                        check_no_live_tensor_is_overwritten(&g, &steps, &tensor_buffer);
                        for (t, &b) in tensor_buffer.iter().enumerate() {
                            if b != usize::MAX {
                                assert!(sizes[b] >= tensor_bytes(&g, t, shapes[t], precision));
                            }
                        }
                        total.push(sizes.iter().sum::<u64>());
                    }
                }
                let [unfused32, unfused16, fused32, fused16] = total[..] else {
                    unreachable!()
                };
                assert!(
                    fused32 <= unfused32,
                    "{layout:?} {w}x{h}: {fused32} > {unfused32}"
                );
                assert!(fused16 <= unfused16);
                assert!(fused16 < fused32);
            }
        }
    }
}
