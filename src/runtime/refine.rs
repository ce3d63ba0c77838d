//! The edge-aware refinement at the network's size (`shaders/refine.wgsl`, twin
//! [`crate::kernels::refine`]): the frame's colours per network pixel (held from frame to
//! frame over a live camera), then [`refine::ITERATIONS`] mean-field iterations ping-ponging
//! between two buffers, then the hold pass into the result, all in the frame's encoder. It
//! reads the class probabilities the smoothing pass leaves and writes the ones the edge-aware
//! upscale (or the overlay) brings to the output's size.

use std::cell::Cell;

use super::Plan;
use crate::kernels::Params;
use crate::kernels::refine::{self, REFINE, RefineBindings, RefineParams};
use crate::kernels::upscale::Sizes;

/// The pipeline; one per device.
pub struct Refiner {
    pipeline: wgpu::ComputePipeline,
}

/// One plan's refinement: its three parameter blocks (colours, iteration, hold), the
/// colours, the ping-pong buffers, the result and their bind groups (made when the plan
/// changes, never per frame).
pub struct RefineBinding {
    /// The colours pass, the first iteration (from the probabilities), the two ping-pong
    /// directions, then the hold pass from the buffer the iterations end in.
    groups: [wgpu::BindGroup; 5],
    probs: wgpu::Buffer,
    refined: wgpu::Buffer,
    work: [wgpu::Buffer; 2],
    colours: wgpu::Buffer,
    params: [wgpu::Buffer; 3],
    sizes: Sizes,
    grid: [u32; 3],
    /// The next frame keeps nothing from the last.
    reset: Cell<bool>,
    /// The (keep, reset) the colours and hold parameters were last written with.
    written: Cell<Option<(f32, bool)>>,
}

impl RefineBinding {
    /// The refined class probabilities, planar f32 like the input (valid after
    /// [`Refiner::encode`], or a copy of the input after [`Refiner::encode_copy`]).
    pub fn prob_buffer(&self) -> &wgpu::Buffer {
        &self.refined
    }

    /// The next frame starts afresh (smoothing switched on).
    pub fn reset(&self) {
        self.reset.set(true);
    }

    pub fn memory_bytes(&self) -> u64 {
        self.refined.size()
            + self.work.iter().map(|b| b.size()).sum::<u64>()
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
        let work = [
            buffer("refine iterations, first", bytes, storage),
            buffer("refine iterations, second", bytes, storage),
        ];
        let colours = buffer("colours at the network's size", pixels * 16, storage);
        let stages = [refine::COLOURS, refine::ITERATE, refine::HOLD]
            .map(|stage| refine::stage_params(sizes, stage, 0.0, true));
        let params = stages.map(|p| {
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
        // An odd count of iterations ends in the first work buffer.
        const _: () = assert!(refine::ITERATIONS % 2 == 1);
        let groups = [
            group(&params[0], probs, &work[0]),
            group(&params[1], probs, &work[0]),
            group(&params[1], &work[0], &work[1]),
            group(&params[1], &work[1], &work[0]),
            group(&params[2], &work[0], &refined),
        ];
        RefineBinding {
            groups,
            probs: probs.clone(),
            refined,
            work,
            colours,
            params,
            sizes,
            grid: stages[1].grid(),
            reset: Cell::new(true),
            written: Cell::new(Some((0.0, true))),
        }
    }

    /// Records the colours pass, the iterations and the hold pass, keeping `keep` (the
    /// smoothing's strength; 0 for a single picture) of the last frame's; the result is in
    /// [`RefineBinding::prob_buffer`].
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        binding: &RefineBinding,
        keep: f32,
    ) {
        let state = (keep.clamp(0.0, 1.0), binding.reset.replace(false));
        if binding.written.get() != Some(state) {
            for (stage, buffer) in [(refine::COLOURS, 0), (refine::HOLD, 2)] {
                let p = refine::stage_params(binding.sizes, stage, state.0, state.1);
                queue.write_buffer(&binding.params[buffer], 0, &p.bytes());
            }
            binding.written.set(Some(state));
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("refine"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        let [x, y, z] = binding.grid;
        // Colours, iteration 1 from the probabilities, back and forth, then the hold.
        let order = [0, 1]
            .into_iter()
            .chain((1..refine::ITERATIONS).map(|i| if i % 2 == 1 { 2 } else { 3 }))
            .chain(std::iter::once(4));
        for g in order {
            pass.set_bind_group(0, &binding.groups[g], &[]);
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records a plain copy of the probabilities instead (no refinement: nearest or
    /// bilinear upscaling, or an output no larger than the network); refinement switched on
    /// later starts afresh.
    pub fn encode_copy(&self, encoder: &mut wgpu::CommandEncoder, binding: &RefineBinding) {
        binding.reset.set(true);
        encoder.copy_buffer_to_buffer(&binding.probs, 0, &binding.refined, 0, binding.probs.size());
    }
}
