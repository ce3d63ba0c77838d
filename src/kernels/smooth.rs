//! Temporal smoothing of the class map for the live view (`shaders/smooth.wgsl`; twin
//! [`super::twin::smooth`]): each frame's softmax blended into the kept probabilities by the
//! pixel's own uncertainty. The runtime's `Smoother` binds its own buffers through
//! [`SmoothBindings`].

use super::KernelSource;
use super::twin::{Tensor, argmax};
use super::unit::grid_16x4;
use crate::model::graph::Shape;

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

// The twin: the same operation in plain Rust, for the tests.

/// Twin of `smooth.wgsl`: blends this frame's softmax into `probs` (the previous frame's
/// blend, updated in place; ignored when `reset`), keeping `strength * (1 - (p1 - p2))^2` of
/// the old probabilities per pixel. Returns the smoothed class map.
pub fn smooth(logits: &Tensor, probs: &mut [f32], strength: f32, reset: bool) -> Vec<u32> {
    let Shape { c, h, w } = logits.shape;
    let hw = h * w;
    let raw = argmax(logits);
    let mut classes = vec![0u32; hw];
    for i in 0..hw {
        let top = logits.data[raw[i] as usize * hw + i];
        let e: Vec<f32> = (0..c)
            .map(|k| (logits.data[k * hw + i] - top).exp())
            .collect();
        let sum: f32 = e.iter().sum();
        let mut sorted = e.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let margin = 1.0 - (sorted[0] - sorted.get(1).copied().unwrap_or(0.0)) / sum;
        let uncertainty = margin * margin;
        let keep = if reset {
            0.0
        } else {
            strength.clamp(0.0, 1.0) * uncertainty
        };
        let mut best = (0, -1.0f32);
        for (k, ek) in e.iter().enumerate() {
            let q = ek / sum;
            let b = q + (probs[k * hw + i] - q) * keep;
            probs[k * hw + i] = b;
            if b > best.1 {
                best = (k, b);
            }
        }
        classes[i] = best.0 as u32;
    }
    classes
}
