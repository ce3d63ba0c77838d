//! Temporal smoothing of the class map across frames, for the live view: the softmax of each
//! frame blended into the previous frames' probabilities by each pixel's own uncertainty
//! (`shaders/smooth.wgsl`). It runs after a plan's argmax in the same encoder: no extra
//! submission and nothing read back.

use std::cell::Cell;
use std::num::NonZeroU64;

use super::Plan;
use crate::kernels::smooth::{SMOOTH, SmoothBindings, SmoothParams};
use crate::kernels::{Params, Precision};

/// The pipelines (one per precision the logits may be stored at) and the parameters; one
/// per device.
pub struct Smoother {
    pipelines: Vec<(Precision, wgpu::ComputePipeline)>,
    params: wgpu::Buffer,
    /// Parameters last written, so a steady frame writes nothing.
    written: Cell<Option<SmoothParams>>,
}

/// The probabilities kept between frames and the smoothed class map, for one plan.
pub struct SmoothBinding {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    classes: wgpu::Buffer,
    probs: wgpu::Buffer,
    shape: [u32; 3],
    /// The next frame starts afresh (new plan, or smoothing switched back on).
    reset: Cell<bool>,
}

impl SmoothBinding {
    /// The smoothed class map: one u32 class index per pixel, like [`Plan::class_buffer`].
    pub fn class_buffer(&self) -> &wgpu::Buffer {
        &self.classes
    }

    /// The (smoothed) class probabilities, planar f32 (`probs[c][pixel]`).
    pub fn prob_buffer(&self) -> &wgpu::Buffer {
        &self.probs
    }

    /// Forget the previous frames: the next frame's own probabilities are taken as they are.
    pub fn reset(&self) {
        self.reset.set(true);
    }

    pub fn memory_bytes(&self) -> u64 {
        self.classes.size() + self.probs.size()
    }
}

impl Smoother {
    pub fn new(device: &wgpu::Device) -> Smoother {
        let mut precisions = vec![Precision::F32];
        if device.features().contains(wgpu::Features::SHADER_F16) {
            precisions.push(Precision::F16);
        }
        let pipelines = precisions
            .into_iter()
            .map(|precision| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(SMOOTH.name),
                    source: wgpu::ShaderSource::Wgsl(SMOOTH.source(precision)),
                });
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(SMOOTH.name),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                });
                (precision, pipeline)
            })
            .collect();
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("smoothing parameters"),
            size: std::mem::size_of::<SmoothParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Smoother {
            pipelines,
            params,
            written: Cell::new(None),
        }
    }

    /// Buffers for `plan` (made when the plan changes, never per frame).
    pub fn bind(&self, device: &wgpu::Device, plan: &Plan) -> SmoothBinding {
        let out = plan.shape(plan.output());
        let pixels = (out.w * out.h) as u64;
        let buffer = |label, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let probs = buffer("smoothed probabilities", pixels * out.c as u64 * 4);
        let classes = buffer("smoothed class map", pixels * 4);
        let logits = plan.tensor_buffer(plan.output());
        // A plan's precision is one the device offers, so its pipeline exists.
        let pipeline = self
            .pipelines
            .iter()
            .find(|(p, _)| *p == plan.precision())
            .map_or(&self.pipelines[0].1, |(_, pipeline)| pipeline)
            .clone();
        let logit_bytes = plan.tensor_bytes(plan.output());
        let bindings = SmoothBindings {
            logits: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: logits,
                offset: 0,
                size: NonZeroU64::new(logit_bytes),
            }),
            raw_classes: plan.class_buffer().as_entire_binding(),
            probs: probs.as_entire_binding(),
            classes: classes.as_entire_binding(),
        };
        let bind_group = super::bind_group(
            device,
            "smooth",
            &pipeline,
            self.params.as_entire_binding(),
            bindings.list(),
        );
        SmoothBinding {
            pipeline,
            bind_group,
            classes,
            probs,
            shape: [out.c as u32, out.h as u32, out.w as u32],
            reset: Cell::new(true),
        }
    }

    /// Records the smoothing pass after the plan's frame. `strength` (0 to 1) is how much
    /// of the past an entirely uncertain pixel keeps.
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        binding: &SmoothBinding,
        strength: f32,
    ) {
        let [channels, h, w] = binding.shape;
        let params = SmoothParams {
            channels,
            h,
            w,
            reset: binding.reset.replace(false) as u32,
            strength: strength.clamp(0.0, 1.0),
            ..Default::default()
        };
        if self.written.get() != Some(params) {
            queue.write_buffer(&self.params, 0, &params.bytes());
            self.written.set(Some(params));
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("smooth"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&binding.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        let [x, y, z] = params.grid();
        pass.dispatch_workgroups(x, y, z);
    }
}
