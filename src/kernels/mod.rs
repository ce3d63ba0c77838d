//! The kernels: one WGSL file per operation under `shaders/`, embedded at build time, and
//! their plain-Rust twins in [`cpu`].

pub mod cpu;

/// A compute kernel's WGSL source, ready for `create_shader_module`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSource {
    pub name: &'static str,
    pub wgsl: &'static str,
}

macro_rules! shader {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file))
    };
}

/// The three convolutions share their bindings and epilogue (`conv_common.wgsl`).
macro_rules! conv_shader {
    ($file:literal) => {
        concat!(shader!("conv_common.wgsl"), "\n", shader!($file))
    };
}

pub const PREPROCESS: KernelSource = KernelSource {
    name: "preprocess",
    wgsl: shader!("preprocess.wgsl"),
};
pub const INITIAL: KernelSource = KernelSource {
    name: "initial_block",
    wgsl: shader!("initial_block.wgsl"),
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
    wgsl: shader!("maxpool.wgsl"),
};
pub const MAX_UNPOOL: KernelSource = KernelSource {
    name: "max_unpool",
    wgsl: shader!("max_unpool.wgsl"),
};
pub const BOTTLENECK: KernelSource = KernelSource {
    name: "bottleneck",
    wgsl: shader!("bottleneck.wgsl"),
};
pub const UPSAMPLE: KernelSource = KernelSource {
    name: "upsample",
    wgsl: shader!("upsample.wgsl"),
};
pub const ARGMAX: KernelSource = KernelSource {
    name: "argmax",
    wgsl: shader!("argmax.wgsl"),
};

pub const SMOOTH: KernelSource = KernelSource {
    name: "smooth",
    wgsl: shader!("smooth.wgsl"),
};

/// Every kernel the runtime uses.
pub const ALL: [KernelSource; 11] = [
    PREPROCESS,
    INITIAL,
    CONV2D,
    CONV1X1,
    CONV_TRANSPOSE2D,
    MAXPOOL,
    MAX_UNPOOL,
    BOTTLENECK,
    UPSAMPLE,
    ARGMAX,
    SMOOTH,
];

/// Workgroup size shared by all kernels: 16 x 4 over (x, y), z over channels or groups.
pub const WORKGROUP: [u32; 2] = [16, 4];
