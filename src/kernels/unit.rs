//! What every kernel module declares, and how: its parameter block ([`params!`]), its
//! bindings ([`bindings!`]) and the [`Call`] its `call` function makes of a lowered step.
//! A call is plain data (no GPU object): the runtime finds its pipeline, binds its resources
//! in the order the kernel's binding struct lists them, and records it.

use super::KernelSource;
use crate::model::Normalization;
use crate::model::graph::{Graph, Shape, TensorId};

/// A kernel's parameter block: the `var<uniform> p` at `@binding(0)`.
pub trait Params: bytemuck::Pod {
    /// The kernels whose `p` has this layout, and the WGSL struct's name.
    const KERNELS: &'static [KernelSource];
    const WGSL: &'static str;
    const FIELDS: &'static [&'static str];
    const OFFSETS: &'static [usize];

    fn bytes(&self) -> Vec<u8> {
        bytemuck::bytes_of(self).to_vec()
    }
}

/// A `#[repr(C)]` parameter struct named as its WGSL struct, for the kernels listed.
macro_rules! params {
    ($(#[$m:meta])* $name:ident for [$($k:ident),+] { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl $crate::kernels::Params for $name {
            const KERNELS: &'static [$crate::kernels::KernelSource] = &[$($k),+];
            const WGSL: &'static str = stringify!($name);
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
            const OFFSETS: &'static [usize] = &[$(std::mem::offset_of!($name, $field)),*];
        }
    };
}

/// How a kernel's WGSL declares a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
    /// A sampled `texture_2d<f32>`.
    Texture,
}

/// A kernel's bindings after its parameters: a struct whose fields are the WGSL globals at
/// `@binding(1)`, `@binding(2)`, ... in that order, named as they are.
pub trait Bindings {
    /// The kernels and entry points bound this way.
    const ENTRIES: &'static [(KernelSource, &'static str)];
    /// Each binding's WGSL name and access, in `@binding` order from 1.
    const NAMES: &'static [(&'static str, Access)];
}

/// A binding struct generic over what is bound (a plan's [`Resource`], or a
/// `wgpu::BindingResource` where a module binds its own buffers), with `list` giving the
/// values in `@binding` order. Nothing else may order them.
macro_rules! bindings {
    ($(#[$m:meta])* $name:ident for [$($k:ident @ $entry:literal),+] { $($field:ident : $access:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug)]
        pub struct $name<R> {
            $(pub $field: R),*
        }

        impl<R> $name<R> {
            /// The values in `@binding` order, from `@binding(1)`.
            pub fn list(self) -> Vec<R> {
                vec![$(self.$field),*]
            }
        }

        impl<R> $crate::kernels::Bindings for $name<R> {
            const ENTRIES: &'static [($crate::kernels::KernelSource, &'static str)] =
                &[$(($k, $entry)),+];
            const NAMES: &'static [(&'static str, $crate::kernels::Access)] =
                &[$((stringify!($field), $crate::kernels::Access::$access)),*];
        }
    };
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

pub(super) fn layout_of<P: Params>() -> Layout {
    (
        P::KERNELS,
        P::WGSL,
        P::FIELDS,
        P::OFFSETS,
        std::mem::size_of::<P>(),
    )
}

/// A binding struct as its test sees it: the entry points and the names with their access.
pub type BindingLayout = (
    &'static [(KernelSource, &'static str)],
    &'static [(&'static str, Access)],
);

pub(super) fn bindings_of<B: Bindings>() -> BindingLayout {
    (B::ENTRIES, B::NAMES)
}

/// Which pipeline a call runs: a kernel's entry point as written, or a kernel specialised
/// for one kind of block (its override constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pipeline {
    Entry(KernelSource, &'static str),
    Bottleneck(super::bottleneck::BlockShape),
    Upsample(super::upsample::UpShape),
}

/// What a plan's dispatch binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Tensor(TensorId),
    /// The packed weights and the per-channel values (bias, PReLU slopes) of every op.
    Weights,
    Aux,
    /// The frame's texture.
    Source,
    /// The class map.
    Classes,
    /// A small writable buffer for a binding this form of the kernel does not use (a
    /// bottleneck's pool indices when it does not pool): no tensor may be bound writable
    /// twice.
    Scratch,
}

/// One dispatch as its kernel describes it.
#[derive(Clone, Debug)]
pub struct Call {
    pub label: String,
    pub pipeline: Pipeline,
    pub params: Vec<u8>,
    /// After the parameters, in `@binding` order (from a binding struct's `list`).
    pub bindings: Vec<Resource>,
    pub groups: [u32; 3],
}

impl Call {
    pub fn new<P: Params>(
        label: String,
        pipeline: Pipeline,
        params: &P,
        bindings: Vec<Resource>,
        groups: [u32; 3],
    ) -> Call {
        Call {
            label,
            pipeline,
            params: params.bytes(),
            bindings,
            groups,
        }
    }
}

/// Where an op's parameters start, in vec4 units, in the weights and aux buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpOffsets {
    pub weights: u32,
    pub aux: u32,
}

/// What a kernel's `call` reads: the graph, its tensors' shapes at this size, where each
/// op's weights lie, how frames are normalised, and the frame's and network's sizes (w, h).
pub struct Lowering<'a> {
    pub graph: &'a Graph,
    pub shapes: &'a [Shape],
    pub offsets: &'a [OpOffsets],
    pub normalization: &'a Normalization,
    pub source: (usize, usize),
    pub net: (usize, usize),
}

impl Lowering<'_> {
    /// A dispatch's name: the layer it computes and its kernel (`bottleneck2_1.main
    /// conv2d`), or the op's index for graphs without names.
    pub fn label(&self, i: usize, kernel: &str) -> String {
        match self.graph.name(i) {
            Some(name) => format!("{name} {kernel}"),
            None => format!("{i}:{kernel}"),
        }
    }

    /// A fused block's dispatch name: the block its op `i` belongs to (`bottleneck2_1`)
    /// and the kernel.
    pub fn block_label(&self, i: usize, kernel: &str) -> String {
        let block = self.graph.name(i).map_or(i.to_string(), |n| {
            n.rsplit_once('.').map_or(n, |(a, _)| a).to_string()
        });
        format!("{block} {kernel}")
    }

    /// The normalisation as the kernels read it: RGB and a fourth lane that keeps alpha.
    pub fn mean_std(&self) -> ([f32; 4], [f32; 4]) {
        let n = self.normalization;
        (
            [n.mean[0], n.mean[1], n.mean[2], 0.0],
            [n.std[0], n.std[1], n.std[2], 1.0],
        )
    }
}

/// Workgroups of the 16 x 4 kernels over `w` x `h` outputs, `z` deep.
pub fn grid_16x4(w: u32, h: u32, z: u32) -> [u32; 3] {
    let [x, y] = super::WORKGROUP;
    [w.div_ceil(x), h.div_ceil(y), z]
}

/// Output-channel groups of 4 a convolution is packed into: the conv shaders compute four
/// groups per invocation, so the count is padded to a multiple of 4.
pub fn conv_groups(cout: usize) -> usize {
    cout.div_ceil(4).next_multiple_of(4)
}

pub(super) fn u(v: usize) -> u32 {
    v as u32
}
