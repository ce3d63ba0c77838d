//! The edge-aware refinement at the network's size (`shaders/refine.wgsl`, twin
//! [`crate::kernels::refine`]): the frame's colours per network pixel, then
//! [`refine::ITERATIONS`] mean-field iterations ping-ponging between two buffers, in the
//! frame's encoder. It reads the class probabilities the smoothing pass leaves and writes the
//! ones the edge-aware upscale (or the overlay) brings to the output's size.

use super::Plan;
use crate::kernels::Params;
use crate::kernels::refine::{self, REFINE, RefineBindings, RefineParams};
use crate::kernels::upscale::Sizes;

/// The pipeline; one per device.
pub struct Refiner {
    pipeline: wgpu::ComputePipeline,
}

/// One plan's refinement: its two parameter blocks (colours pass, iteration), the colours,
/// the ping-pong buffers and their bind groups (made when the plan changes, never per frame).
pub struct RefineBinding {
    /// The colours pass, then the first iteration (from the probabilities), then the two
    /// ping-pong directions.
    groups: [wgpu::BindGroup; 4],
    probs: wgpu::Buffer,
    refined: wgpu::Buffer,
    spare: wgpu::Buffer,
    colours: wgpu::Buffer,
    params: [wgpu::Buffer; 2],
    grid: [u32; 3],
}

impl RefineBinding {
    /// The refined class probabilities, planar f32 like the input (valid after
    /// [`Refiner::encode`], or a copy of the input after [`Refiner::encode_copy`]).
    pub fn prob_buffer(&self) -> &wgpu::Buffer {
        &self.refined
    }

    pub fn memory_bytes(&self) -> u64 {
        self.refined.size()
            + self.spare.size()
            + self.colours.size()
            + self.params.iter().map(|p| p.size()).sum::<u64>()
    }
}

impl Refiner {
    pub fn new(device: &wgpu::Device) -> Refiner {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(REFINE.name),
            source: wgpu::ShaderSource::Wgsl(REFINE.wgsl.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(REFINE.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Refiner { pipeline }
    }

    /// Buffers for `plan`'s class probabilities `probs` (planar f32 at the plan's output
    /// size), guided by the plan's source texture.
    pub fn bind(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        plan: &Plan,
        probs: &wgpu::Buffer,
    ) -> RefineBinding {
        let shape = plan.shape(plan.output());
        let sizes = Sizes {
            net: (shape.w, shape.h),
            src: plan.source_size(),
            out: (shape.w, shape.h),
            channels: shape.c,
        };
        let pixels = (shape.w * shape.h) as u64;
        let buffer = |label, size: u64, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(16),
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let bytes = pixels * shape.c as u64 * 4;
        let refined = buffer(
            "refined probabilities",
            bytes,
            storage | wgpu::BufferUsages::COPY_DST,
        );
        let spare = buffer("refined probabilities, the other half", bytes, storage);
        let colours = buffer("colours at the network's size", pixels * 16, storage);
        let iterate = refine::params(sizes);
        let guide = RefineParams {
            guide: 1,
            ..iterate
        };
        // Written once here: they change only with the plan.
        let params = [guide, iterate].map(|p| {
            let b = buffer(
                "refine parameters",
                std::mem::size_of::<RefineParams>() as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            queue.write_buffer(&b, 0, &p.bytes());
            b
        });
        let frame = plan.source_texture().create_view(&Default::default());
        let group = |params: &wgpu::Buffer, q_in: &wgpu::Buffer, q_out: &wgpu::Buffer| {
            let bindings = RefineBindings {
                frame: wgpu::BindingResource::TextureView(&frame),
                colours: colours.as_entire_binding(),
                unary: probs.as_entire_binding(),
                q_in: q_in.as_entire_binding(),
                q_out: q_out.as_entire_binding(),
            };
            super::bind_group(
                device,
                "refine",
                &self.pipeline,
                params.as_entire_binding(),
                bindings.list(),
            )
        };
        let groups = [
            group(&params[0], probs, &refined),
            group(&params[1], probs, &refined),
            group(&params[1], &refined, &spare),
            group(&params[1], &spare, &refined),
        ];
        RefineBinding {
            groups,
            probs: probs.clone(),
            refined,
            spare,
            colours,
            params,
            grid: iterate.grid(),
        }
    }

    /// Records the colours pass and the iterations; the result is in
    /// [`RefineBinding::prob_buffer`].
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, binding: &RefineBinding) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("refine"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        let [x, y, z] = binding.grid;
        // Colours, then iteration 1 from the probabilities, then back and forth; an odd
        // count ends in `refined`.
        const _: () = assert!(refine::ITERATIONS % 2 == 1);
        let order = std::iter::once(0)
            .chain(std::iter::once(1))
            .chain((1..refine::ITERATIONS).map(|i| if i % 2 == 1 { 2 } else { 3 }));
        for g in order {
            pass.set_bind_group(0, &binding.groups[g], &[]);
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records a plain copy of the probabilities instead (no refinement: nearest or
    /// bilinear upscaling, or an output no larger than the network).
    pub fn encode_copy(&self, encoder: &mut wgpu::CommandEncoder, binding: &RefineBinding) {
        encoder.copy_buffer_to_buffer(&binding.probs, 0, &binding.refined, 0, binding.probs.size());
    }
}
