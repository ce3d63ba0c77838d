//! Class maps at the size they are shown or saved at (`shaders/upscale.wgsl`, the decision
//! per pixel in `shaders/upscale_common.wgsl`, the twin in [`crate::kernels::upscale`]): the
//! class probabilities a plan's frame leaves (the smoothing pass's, [`super::SmoothBinding`])
//! guided by the frame in the plan's source texture, in the same encoder as the frame.

use std::cell::Cell;

use super::Plan;
use crate::kernels::upscale::{UPSCALE, Upscale, UpscaleBindings, UpscaleParams};
use crate::kernels::{self, Params};

/// The pipeline; one per device.
pub struct Upscaler {
    pipeline: wgpu::ComputePipeline,
}

/// One plan's upscale to one output size: parameters, the class map at that size and its
/// readback (made when the plan or the size changes, never per frame).
pub struct UpscaleBinding {
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    classes: wgpu::Buffer,
    readback: wgpu::Buffer,
    base: UpscaleParams,
    /// Parameters last written, so a steady frame writes nothing.
    written: Cell<Option<UpscaleParams>>,
}

impl UpscaleBinding {
    /// The class map at the output size: one u32 class index per pixel.
    pub fn class_buffer(&self) -> &wgpu::Buffer {
        &self.classes
    }

    pub fn out_size(&self) -> (usize, usize) {
        (self.base.out_w as usize, self.base.out_h as usize)
    }

    pub fn memory_bytes(&self) -> u64 {
        self.classes.size() + self.readback.size()
    }

    /// The class map of the last frame encoded with [`Upscaler::encode`] and `read`.
    pub async fn read(&self, gpu: &super::Gpu) -> Result<Vec<u8>, super::EngineError> {
        let bytes = gpu.read_buffer(&self.readback).await?;
        Ok(bytes.chunks_exact(4).map(|b| b[0]).collect())
    }
}

impl Upscaler {
    pub fn new(device: &wgpu::Device) -> Upscaler {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(UPSCALE.name),
            source: wgpu::ShaderSource::Wgsl(UPSCALE.wgsl.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(UPSCALE.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Upscaler { pipeline }
    }

    /// Buffers for `plan`'s class probabilities `probs` (planar f32, the plan's output size
    /// and classes) brought to `out`.
    pub fn bind(
        &self,
        device: &wgpu::Device,
        plan: &Plan,
        probs: &wgpu::Buffer,
        out: (usize, usize),
    ) -> UpscaleBinding {
        let shape = plan.shape(plan.output());
        let (src_w, src_h) = plan.source_size();
        let (inv_space, inv_range) = kernels::upscale::inverse_sigmas();
        let base = UpscaleParams {
            net_w: shape.w as u32,
            net_h: shape.h as u32,
            src_w: src_w as u32,
            src_h: src_h as u32,
            out_w: out.0 as u32,
            out_h: out.1 as u32,
            channels: shape.c as u32,
            inv_space,
            inv_range,
            grid_w: out.0 as u32,
            grid_h: out.1 as u32,
            ..Default::default()
        };
        let bytes = (out.0 * out.1 * 4).max(4) as u64;
        let classes = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("class map at the output size"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("class map at the output size, read back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("upscale parameters"),
            size: std::mem::size_of::<UpscaleParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let guide = plan.source_texture().create_view(&Default::default());
        let bindings = UpscaleBindings {
            probs: probs.as_entire_binding(),
            guide: wgpu::BindingResource::TextureView(&guide),
            classes: classes.as_entire_binding(),
        };
        let bind_group = super::bind_group(
            device,
            "upscale",
            &self.pipeline,
            params.as_entire_binding(),
            bindings.list(),
        );
        UpscaleBinding {
            params,
            bind_group,
            classes,
            readback,
            base,
            written: Cell::new(None),
        }
    }

    /// Records the upscale of the whole output (after the frame and its smoothing pass),
    /// and, with `read`, the copy that [`UpscaleBinding::read`] maps.
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        binding: &UpscaleBinding,
        mode: Upscale,
        read: bool,
    ) {
        let params = UpscaleParams {
            mode: mode.mode(),
            ..binding.base
        };
        self.record(queue, encoder, binding, params);
        if read {
            encoder.copy_buffer_to_buffer(
                &binding.classes,
                0,
                &binding.readback,
                0,
                binding.classes.size(),
            );
        }
    }

    /// Records the class of one pixel `at` of an output of size `out`, copied into `dest`
    /// (4 bytes): the class the overlay draws there. `binding` is bound with a 1x1 output.
    pub fn encode_point(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        binding: &UpscaleBinding,
        mode: Upscale,
        (out, at): ((usize, usize), (usize, usize)),
        dest: &wgpu::Buffer,
    ) {
        let params = UpscaleParams {
            mode: mode.mode(),
            out_w: out.0 as u32,
            out_h: out.1 as u32,
            x0: at.0 as u32,
            y0: at.1 as u32,
            grid_w: 1,
            grid_h: 1,
            ..binding.base
        };
        self.record(queue, encoder, binding, params);
        encoder.copy_buffer_to_buffer(&binding.classes, 0, dest, 0, 4);
    }

    /// Writes `params` where they changed and records the dispatch over their grid.
    fn record(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        binding: &UpscaleBinding,
        params: UpscaleParams,
    ) {
        if binding.written.get() != Some(params) {
            queue.write_buffer(&binding.params, 0, &params.bytes());
            binding.written.set(Some(params));
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("upscale"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        let [x, y, z] = params.grid();
        pass.dispatch_workgroups(x, y, z);
    }
}
