//! The kernels. Each is one WGSL file under `shaders/` (embedded at build time) and one
//! module here of the same name, which holds everything the host knows about it: its
//! source, its parameter struct, its bindings in `@binding` order, its specialisation where
//! it has one, its grid, and the one function (`call`) that turns a lowered step into a
//! dispatch. Their plain-Rust twins are in [`cpu`] (and [`upscale`]). `tests/shaders.rs`
//! holds every parameter and binding struct to its WGSL through naga.

/// A compute kernel's WGSL source, ready for `create_shader_module`: `wgsl` stores
/// activations and weights in f32; [`KernelSource::source`] gives the f16 form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelSource {
    pub name: &'static str,
    pub wgsl: &'static str,
}

/// How activations and weights are stored in memory. Arithmetic is f32 either way: loads
/// convert (`f32(input[i])`), stores round (`act(v)`), so f16 halves the memory traffic and
/// keeps the accumulation exact enough.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    /// Bytes per stored activation.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("unknown precision {s:?}: f32 or f16")),
        }
    }
}

/// The storage types every network kernel is written against (`act`, `act4`), first in its
/// source.
const F32_PRELUDE: &str = "alias act = f32;\nalias act4 = vec4<f32>;\n";
const F16_PRELUDE: &str = "enable f16;\nalias act = f16;\nalias act4 = vec4<f16>;\n";

impl KernelSource {
    /// The source with activations and weights stored at `precision`.
    pub fn source(&self, precision: Precision) -> std::borrow::Cow<'static, str> {
        match (precision, self.wgsl.strip_prefix(F32_PRELUDE)) {
            (Precision::F16, Some(rest)) => format!("{F16_PRELUDE}{rest}").into(),
            _ => self.wgsl.into(),
        }
    }

    /// Whether the kernel touches activations or weights (and so has an f16 form).
    pub fn has_precision(&self) -> bool {
        self.wgsl.starts_with(F32_PRELUDE)
    }
}

macro_rules! shader {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file))
    };
}

/// A network kernel: the storage types first (must equal `F32_PRELUDE`), then how
/// activations lie in memory (`layout.wgsl`) and the activation function (`activation.wgsl`),
/// then the parts it shares with other kernels, then its own file.
macro_rules! net_shader {
    ($($part:literal),* ; $file:literal) => {
        concat!(
            "alias act = f32;\nalias act4 = vec4<f32>;\n",
            shader!("layout.wgsl"),
            "\n",
            shader!("activation.wgsl"),
            "\n",
            $(shader!($part), "\n",)*
            shader!($file)
        )
    };
}

// The unit every kernel module is written in (parameters, bindings, calls); first, so the
// kernel modules below can use its macros.
#[macro_use]
mod unit;
pub use unit::{
    Access, Bindings, Call, Layout, Lowering, OpOffsets, Params, Pipeline, Resource, conv_groups,
};

pub mod argmax;
pub mod bottleneck;
pub mod conv;
pub mod frame_initial;
pub mod initial_block;
pub mod overlay;
pub mod pool;
pub mod preprocess;
pub mod refine;
pub mod smooth;
pub mod twin;
pub mod upsample;
pub mod upscale;

pub use argmax::ARGMAX;
pub use bottleneck::BOTTLENECK;
pub use conv::{CONV_TRANSPOSE2D, CONV1X1, CONV2D};
pub use frame_initial::FRAME_INITIAL;
pub use initial_block::INITIAL;
pub use pool::{MAX_UNPOOL, MAXPOOL};
pub use preprocess::PREPROCESS;
pub use refine::REFINE;
pub use smooth::SMOOTH;
pub use upsample::UPSAMPLE;
pub use upscale::UPSCALE;

/// Every kernel the runtime uses.
pub const ALL: [KernelSource; 14] = [
    PREPROCESS,
    INITIAL,
    FRAME_INITIAL,
    CONV2D,
    CONV1X1,
    CONV_TRANSPOSE2D,
    MAXPOOL,
    MAX_UNPOOL,
    BOTTLENECK,
    UPSAMPLE,
    ARGMAX,
    SMOOTH,
    REFINE,
    UPSCALE,
];

/// The entry points of the network kernels that run as written (the fused ones are
/// specialised per block): the pipelines an engine makes up front.
pub const PLAIN_ENTRIES: [(KernelSource, &str); 10] = [
    (PREPROCESS, "main"),
    (INITIAL, "main"),
    (FRAME_INITIAL, "main"),
    (CONV2D, "main"),
    (CONV1X1, "main"),
    (CONV_TRANSPOSE2D, "main"),
    (CONV_TRANSPOSE2D, "with_argmax"),
    (MAXPOOL, "main"),
    (MAX_UNPOOL, "main"),
    (ARGMAX, "main"),
];

/// Every parameter struct, for the test that holds each to its shaders.
pub fn all_params() -> Vec<Layout> {
    use unit::layout_of as l;
    vec![
        l::<preprocess::PreParams>(),
        l::<initial_block::InitialParams>(),
        l::<frame_initial::FrameInitialParams>(),
        l::<conv::ConvParams>(),
        l::<pool::PoolParams>(),
        l::<bottleneck::BottleneckParams>(),
        l::<upsample::UpsampleParams>(),
        l::<argmax::ArgmaxParams>(),
        l::<smooth::SmoothParams>(),
        l::<refine::RefineParams>(),
        l::<upscale::UpscaleParams>(),
    ]
}

/// Every binding struct with the entry points it is bound to, for the test that holds each
/// to its shaders' globals: (kernel, entry point, names and access in `@binding` order).
pub fn all_bindings() -> Vec<unit::BindingLayout> {
    use unit::bindings_of as b;
    vec![
        b::<preprocess::PreprocessBindings<()>>(),
        b::<initial_block::InitialBindings<()>>(),
        b::<frame_initial::FrameInitialBindings<()>>(),
        b::<conv::ConvBindings<()>>(),
        b::<conv::ConvArgmaxBindings<()>>(),
        b::<pool::MaxPoolBindings<()>>(),
        b::<pool::MaxUnpoolBindings<()>>(),
        b::<bottleneck::BottleneckBindings<()>>(),
        b::<upsample::UpsampleBindings<()>>(),
        b::<argmax::ArgmaxBindings<()>>(),
        b::<smooth::SmoothBindings<()>>(),
        b::<refine::RefineBindings<()>>(),
        b::<upscale::UpscaleBindings<()>>(),
    ]
}

/// How activations lie in memory (`shaders/layout.wgsl`): channels in groups of 4, each group
/// a plane of pixels whose 4 channels sit side by side, so a pixel's group is one vec4 load.
/// A tensor of `c` channels takes `c` rounded up to 4; the padding channels hold nothing
/// meaningful and no kernel reads them as channels.
pub mod layout {
    use crate::model::graph::Shape;

    /// Values a tensor of `shape` takes in memory.
    pub fn stored_len(shape: Shape) -> usize {
        shape.c.next_multiple_of(4) * shape.h * shape.w
    }

    /// Where channel `c` of pixel `i` (of `plane` pixels) is stored.
    pub fn at(c: usize, i: usize, plane: usize) -> usize {
        ((c / 4) * plane + i) * 4 + c % 4
    }

    /// Planar (`[c][h][w]`) values as stored, the padding channels `padding`.
    pub fn pack(shape: Shape, planar: &[f32], padding: f32) -> Vec<f32> {
        let plane = shape.h * shape.w;
        let mut out = vec![padding; stored_len(shape)];
        for (k, &v) in planar.iter().enumerate().take(shape.len()) {
            out[at(k / plane, k % plane, plane)] = v;
        }
        out
    }

    /// Stored values back to planar order.
    pub fn unpack(shape: Shape, stored: &[f32]) -> Vec<f32> {
        let plane = shape.h * shape.w;
        (0..shape.len())
            .map(|k| stored[at(k / plane, k % plane, plane)])
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn packing_round_trips_and_groups_a_pixels_channels() {
            for c in [1, 3, 4, 13, 16] {
                let shape = Shape { c, h: 3, w: 5 };
                let planar: Vec<f32> = (0..shape.len()).map(|v| v as f32 + 1.0).collect();
                let stored = pack(shape, &planar, 0.0);
                assert_eq!(stored.len(), c.next_multiple_of(4) * 15);
                assert_eq!(unpack(shape, &stored), planar);
                // Pixel 7's first four channels are adjacent; padding channels are zero.
                for j in 0..4 {
                    let want = if j < c { planar[j * 15 + 7] } else { 0.0 };
                    assert_eq!(stored[7 * 4 + j], want, "c={c} j={j}");
                }
            }
        }
    }
}

/// Workgroup size of the plain kernels: 16 x 4 over (x, y), z over channels or groups.
pub const WORKGROUP: [u32; 2] = [16, 4];
