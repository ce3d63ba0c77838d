//! The last stage: the class map composited over the source frame by a render pass, into a
//! target of any size (the canvas at the screen's pixel density), in one of three views.

use wgpu::util::DeviceExt;

use super::Plan;
pub use crate::kernels::twin::View;
use crate::kernels::upscale::{self, Upscale};
use crate::model::ClassInfo;

/// How a frame is drawn; the page's controls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DrawOptions {
    /// Class colour opacity in [`View::Overlay`], 0 to 1.
    pub alpha: f32,
    pub view: View,
    /// Flip left-right (a front camera, shown as a mirror).
    pub mirror: bool,
    /// How classes are brought from the network's size to the target's.
    pub upscale: Upscale,
}

impl Default for DrawOptions {
    fn default() -> Self {
        DrawOptions {
            alpha: 0.5,
            view: View::Overlay,
            mirror: false,
            upscale: Upscale::default(),
        }
    }
}

/// Render pipeline and the small buffers it reads; one per output format.
pub struct Overlay {
    pipeline: wgpu::RenderPipeline,
    params: wgpu::Buffer,
    palette: wgpu::Buffer,
    sampler: wgpu::Sampler,
    /// Class colours (alpha 0: hidden), as written to `palette`.
    colors: Vec<[f32; 4]>,
    void_class: u32,
    /// Parameters last written, so an unchanged frame writes nothing.
    written: std::cell::Cell<[u32; 16]>,
}

/// Bindings for one plan (its frame texture and class map); made when the plan changes.
pub struct OverlayBinding {
    bind_group: wgpu::BindGroup,
    sizes: [u32; 4],
}

/// `overlay.wgsl` after the upscaling it shares with `upscale.wgsl`.
pub const SHADER: &str = concat!(
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/shaders/upscale_common.wgsl"
    )),
    "\n",
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/overlay.wgsl"))
);

/// Palette entries the overlay holds (class maps have at most 256 classes).
const PALETTE_LEN: usize = 256;

impl Overlay {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Overlay {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("overlay"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("overlay"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("overlay parameters"),
            size: 64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let palette = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("palette"),
            contents: &[0u8; PALETTE_LEN * 16],
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        // Linear: a frame drawn larger or smaller than its own size stays smooth.
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("overlay frame"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Overlay {
            pipeline,
            params,
            palette,
            sampler,
            colors: Vec::new(),
            void_class: u32::MAX,
            written: std::cell::Cell::new([0; 16]),
        }
    }

    /// Class colours (and which class is left uncoloured).
    pub fn set_classes(&mut self, queue: &wgpu::Queue, classes: &[ClassInfo], void: Option<usize>) {
        let colors: Vec<[f32; 4]> = classes
            .iter()
            .take(PALETTE_LEN)
            .map(|c| {
                [
                    c.color[0] as f32 / 255.0,
                    c.color[1] as f32 / 255.0,
                    c.color[2] as f32 / 255.0,
                    1.0,
                ]
            })
            .collect();
        queue.write_buffer(&self.palette, 0, bytemuck::cast_slice(&colors));
        self.colors = colors;
        self.void_class = void.map_or(u32::MAX, |v| v as u32);
    }

    /// Shows or hides one class's colour (hidden classes look like void). Returns false for
    /// a class the model does not have.
    pub fn set_class_visible(&mut self, queue: &wgpu::Queue, class: usize, visible: bool) -> bool {
        let Some(color) = self.colors.get_mut(class) else {
            return false;
        };
        color[3] = if visible { 1.0 } else { 0.0 };
        queue.write_buffer(
            &self.palette,
            (class * 16) as u64,
            bytemuck::cast_slice(&color[..]),
        );
        true
    }

    /// Bindings for `plan`'s frame and `classes`, a class map of the plan's network size
    /// (the plan's own, or a smoothed one), and `probs`, the class probabilities behind it
    /// (planar f32, read when [`DrawOptions::upscale`] is not nearest).
    pub fn bind(
        &self,
        device: &wgpu::Device,
        plan: &Plan,
        classes: &wgpu::Buffer,
        probs: &wgpu::Buffer,
    ) -> OverlayBinding {
        let view = plan.source_texture().create_view(&Default::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("overlay"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: classes.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: self.palette.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: probs.as_entire_binding(),
                },
            ],
        });
        let (sw, sh) = plan.source_size();
        let (nw, nh) = plan.net_size();
        OverlayBinding {
            bind_group,
            sizes: [sw as u32, sh as u32, nw as u32, nh as u32],
        }
    }

    /// Writes the parameters (a queue write, no allocation) and records the render pass into
    /// `target`, a texture of `target_size`.
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        target_size: (u32, u32),
        binding: &OverlayBinding,
        opts: DrawOptions,
    ) {
        let [sw, sh, nw, nh] = binding.sizes;
        let (inv_space, inv_range) = upscale::inverse_sigmas();
        let view = match opts.view {
            View::Overlay => 0,
            View::Mask => 1,
            View::SideBySide => 2,
        };
        let words = [
            sw,
            sh,
            nw,
            nh,
            target_size.0.max(1),
            target_size.1.max(1),
            view,
            opts.mirror as u32,
            opts.alpha.clamp(0.0, 1.0).to_bits(),
            self.void_class,
            self.colors.len() as u32,
            opts.upscale.mode(),
            inv_space.to_bits(),
            inv_range.to_bits(),
            0,
            0,
        ];
        if self.written.get() != words {
            queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&words));
            self.written.set(words);
        }
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("overlay"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}
