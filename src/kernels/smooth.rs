//! Temporal smoothing of the class map for the live view (`shaders/smooth.wgsl`; twin
//! [`super::cpu::smooth`]): each frame's softmax blended into the kept probabilities by the
//! pixel's own uncertainty. The runtime's `Smoother` binds its own buffers through
//! [`SmoothBindings`].

use super::KernelSource;
use super::unit::grid_16x4;

pub const SMOOTH: KernelSource = KernelSource {
    name: "smooth",
    wgsl: net_shader!(; "smooth.wgsl"),
};

params! {
    SmoothParams for [SMOOTH] {
        // reset 1: forget the kept probabilities (first frame, new size, smoothing on again).
        channels: u32, h: u32, w: u32, reset: u32,
        strength: f32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
}

bindings! {
    SmoothBindings for [SMOOTH @ "main"] {
        logits: Read,
        raw_classes: Read,
        probs: ReadWrite,
        classes: ReadWrite,
    }
}

impl SmoothParams {
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.w, self.h, 1)
    }
}
