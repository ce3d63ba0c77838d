//! The kernels: one WGSL file per operation under `shaders/`, embedded at build time, and
//! their plain-Rust twins in [`cpu`].

pub mod cpu;
pub mod upscale;

/// A compute kernel's WGSL source, ready for `create_shader_module`: `wgsl` stores
/// activations and weights in f32; [`KernelSource::source`] gives the f16 form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
/// activations lie in memory (`layout.wgsl`).
macro_rules! net_shader {
    ($file:literal) => {
        concat!(
            "alias act = f32;\nalias act4 = vec4<f32>;\n",
            shader!("layout.wgsl"),
            "\n",
            shader!($file)
        )
    };
}

/// The three convolutions share their bindings and epilogue (`conv_common.wgsl`).
macro_rules! conv_shader {
    ($file:literal) => {
        concat!(
            "alias act = f32;\nalias act4 = vec4<f32>;\n",
            shader!("layout.wgsl"),
            "\n",
            shader!("conv_common.wgsl"),
            "\n",
            shader!($file)
        )
    };
}

/// A network kernel with shared parts before it (`resize_common.wgsl`: the frame's resize
/// and normalisation; `initial_common.wgsl`: the initial block's epilogue).
macro_rules! net_shader_with {
    ($($part:literal),+ ; $file:literal) => {
        concat!(
            "alias act = f32;\nalias act4 = vec4<f32>;\n",
            shader!("layout.wgsl"),
            "\n",
            $(shader!($part), "\n",)+
            shader!($file)
        )
    };
}

pub const PREPROCESS: KernelSource = KernelSource {
    name: "preprocess",
    wgsl: net_shader_with!("resize_common.wgsl"; "preprocess.wgsl"),
};
pub const INITIAL: KernelSource = KernelSource {
    name: "initial_block",
    wgsl: net_shader_with!("initial_common.wgsl"; "initial_block.wgsl"),
};
/// The preprocessing folded into the initial block: the frame in, the block's output out.
pub const FRAME_INITIAL: KernelSource = KernelSource {
    name: "frame_initial",
    wgsl: net_shader_with!("resize_common.wgsl", "initial_common.wgsl"; "frame_initial.wgsl"),
};
pub const CONV2D: KernelSource = KernelSource {
    name: "conv2d",
    wgsl: conv_shader!("conv2d.wgsl"),
};
pub const CONV1X1: KernelSource = KernelSource {
    name: "conv1x1",
    wgsl: conv_shader!("conv1x1.wgsl"),
};
pub const CONV_TRANSPOSE2D: KernelSource = KernelSource {
    name: "conv_transpose2d",
    wgsl: conv_shader!("conv_transpose2d.wgsl"),
};
pub const MAXPOOL: KernelSource = KernelSource {
    name: "maxpool",
    wgsl: net_shader!("maxpool.wgsl"),
};
pub const MAX_UNPOOL: KernelSource = KernelSource {
    name: "max_unpool",
    wgsl: net_shader!("max_unpool.wgsl"),
};
pub const BOTTLENECK: KernelSource = KernelSource {
    name: "bottleneck",
    wgsl: net_shader!("bottleneck.wgsl"),
};
pub const UPSAMPLE: KernelSource = KernelSource {
    name: "upsample",
    wgsl: net_shader!("upsample.wgsl"),
};
pub const ARGMAX: KernelSource = KernelSource {
    name: "argmax",
    wgsl: net_shader!("argmax.wgsl"),
};

pub const SMOOTH: KernelSource = KernelSource {
    name: "smooth",
    wgsl: net_shader!("smooth.wgsl"),
};

/// Class probabilities at the network's size -> classes at the output's size (nearest,
/// bilinear or guided by the frame's edges; [`upscale`]).
pub const UPSCALE: KernelSource = KernelSource {
    name: "upscale",
    wgsl: concat!(
        shader!("upscale_common.wgsl"),
        "\n",
        shader!("upscale.wgsl")
    ),
};

/// Every kernel the runtime uses.
pub const ALL: [KernelSource; 13] = [
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
    UPSCALE,
];

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

/// Workgroup size shared by all kernels: 16 x 4 over (x, y), z over channels or groups.
pub const WORKGROUP: [u32; 2] = [16, 4];
