//! Each kernel's uniform parameters: one `#[repr(C)]` struct per WGSL struct, with the
//! dispatch grid next to it. `tests/shaders.rs` checks every struct against its shader (field
//! names, offsets, size), so the two cannot drift apart.

use crate::kernels::{self, KernelSource, WORKGROUP};

/// A kernel's parameter block.
pub trait Params: bytemuck::Pod {
    /// The kernels whose `var<uniform> p` has this layout, and the WGSL struct's name.
    const KERNELS: &'static [KernelSource];
    const WGSL: &'static str;
    const FIELDS: &'static [&'static str];
    const OFFSETS: &'static [usize];

    fn bytes(&self) -> Vec<u8> {
        bytemuck::bytes_of(self).to_vec()
    }
}

macro_rules! params {
    ($(#[$m:meta])* $name:ident for [$($k:ident),+] { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl Params for $name {
            const KERNELS: &'static [KernelSource] = &[$(kernels::$k),+];
            const WGSL: &'static str = stringify!($name);
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
            const OFFSETS: &'static [usize] = &[$(std::mem::offset_of!($name, $field)),*];
        }
    };
}

/// Workgroups of the 16 x 4 kernels over `w` x `h` outputs, `z` deep.
fn grid_16x4(w: u32, h: u32, z: u32) -> [u32; 3] {
    [w.div_ceil(WORKGROUP[0]), h.div_ceil(WORKGROUP[1]), z]
}

params! {
    /// `shaders/preprocess.wgsl`: source frame -> normalised network input.
    PreParams for [PREPROCESS] {
        src_w: u32, src_h: u32, dst_w: u32, dst_h: u32,
        mean: [f32; 4],
        stddev: [f32; 4],
    }
}

impl PreParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.dst_w, self.dst_h, 1)
    }
}

params! {
    /// `shaders/initial_block.wgsl`.
    InitialParams for [INITIAL] {
        in_h: u32, in_w: u32, out_h: u32, out_w: u32,
        stride: u32, pad: u32, pool_k: u32, pool_pad: u32,
        w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
    }
}

impl InitialParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, 1)
    }
}

params! {
    /// `shaders/frame_initial.wgsl`: the preprocessing folded into the initial block.
    FrameInitialParams for [FRAME_INITIAL] {
        src_w: u32, src_h: u32, in_w: u32, in_h: u32,
        out_w: u32, out_h: u32, pool_k: u32, pool_pad: u32,
        w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
        mean: [f32; 4],
        stddev: [f32; 4],
    }
}

impl FrameInitialParams {
    /// One workgroup per 16x16 output pixels.
    pub fn grid(&self) -> [u32; 3] {
        let t = crate::runtime::fuse::FRAME_TILE as u32;
        [self.out_w.div_ceil(t), self.out_h.div_ceil(t), 1]
    }
}

params! {
    /// `shaders/conv_common.wgsl`, shared by the three convolution kernels.
    ConvParams for [CONV2D, CONV1X1, CONV_TRANSPOSE2D] {
        in_c: u32, in_h: u32, in_w: u32, out_c: u32,
        out_h: u32, out_w: u32, k_h: u32, k_w: u32,
        stride_h: u32, stride_w: u32, pad_h: u32, pad_w: u32,
        dil_h: u32, dil_w: u32, w_off: u32, aux_off: u32,
        res_c: u32, has_res: u32, groups: u32, _pad: u32,
    }
}

impl ConvParams {
    /// One invocation per output pixel and 16 channels (four groups of 4).
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, self.groups / 4)
    }
}

params! {
    /// `shaders/maxpool.wgsl` and `shaders/max_unpool.wgsl`.
    PoolParams for [MAXPOOL, MAX_UNPOOL] {
        channels: u32, in_h: u32, in_w: u32, out_h: u32,
        out_w: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
}

impl PoolParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, self.channels)
    }
}

params! {
    /// `shaders/bottleneck.wgsl` (its grid comes from the block's shape:
    /// [`super::fuse::BlockShape::grid`]).
    BottleneckParams for [BOTTLENECK] {
        h: u32, w: u32, pad_h: u32, pad_w: u32,
        proj_w: u32, proj_aux: u32, main_w: u32, main_aux: u32,
        exp_w: u32, exp_aux: u32, mid_groups: u32, exp_groups: u32,
        res_h: u32, res_w: u32, first_w: u32, first_aux: u32,
    }
}

params! {
    /// `shaders/upsample.wgsl` (grid: [`super::fuse::UpShape::grid`]).
    UpsampleParams for [UPSAMPLE] {
        h: u32, w: u32, in_h: u32, in_w: u32,
        main_w: u32, main_aux: u32, proj_w: u32, proj_aux: u32,
        tconv_w: u32, tconv_aux: u32, exp_w: u32, exp_aux: u32,
        ch_groups: u32, mid_groups: u32, _pad0: u32, _pad1: u32,
    }
}

params! {
    /// `shaders/argmax.wgsl`.
    ArgmaxParams for [ARGMAX] {
        channels: u32, h: u32, w: u32, _pad: u32,
    }
}

impl ArgmaxParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.w, self.h, 1)
    }
}

params! {
    /// `shaders/upscale.wgsl`: class probabilities -> classes at the output's size, over a
    /// `grid_w` x `grid_h` window of the output starting at (`x0`, `y0`).
    UpscaleParams for [UPSCALE] {
        net_w: u32, net_h: u32, src_w: u32, src_h: u32,
        out_w: u32, out_h: u32, channels: u32, mode: u32,
        inv_space: f32, inv_range: f32, x0: u32, y0: u32,
        grid_w: u32, grid_h: u32, _pad0: u32, _pad1: u32,
    }
}

impl UpscaleParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.grid_w, self.grid_h, 1)
    }
}

/// A parameter struct as the test that holds it to its shaders sees it: its kernels, WGSL
/// name, fields, their offsets, and its size.
pub type Layout = (
    &'static [KernelSource],
    &'static str,
    &'static [&'static str],
    &'static [usize],
    usize,
);

fn layout<P: Params>() -> Layout {
    (
        P::KERNELS,
        P::WGSL,
        P::FIELDS,
        P::OFFSETS,
        std::mem::size_of::<P>(),
    )
}

/// Every parameter struct.
pub fn all() -> Vec<Layout> {
    vec![
        layout::<PreParams>(),
        layout::<InitialParams>(),
        layout::<FrameInitialParams>(),
        layout::<ConvParams>(),
        layout::<PoolParams>(),
        layout::<BottleneckParams>(),
        layout::<UpsampleParams>(),
        layout::<ArgmaxParams>(),
        layout::<UpscaleParams>(),
    ]
}
