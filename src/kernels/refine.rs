//! Class probabilities refined along the frame's edges at the network's size, before the
//! edge-aware upscale (`shaders/refine.wgsl`; the runtime's `Refiner` binds and records it):
//! a few mean-field iterations of a Potts CRF in a window of 7 x 7 taps two network pixels
//! apart, guided by the frame averaged down to the network's pixels. The plain-Rust twin is
//! [`refine`].
//!
//! Why: joint bilateral upsampling alone moves a boundary by at most a network pixel or two;
//! the network's own boundaries at a small size are blurred over several pixels and its
//! uncertain pixels speckle. Letting like-coloured neighbours vote fixes both (on CamVid val
//! at 240x176, `examples/upscale_sweep.rs ... crf`). Taps two pixels apart reach as far as
//! 13 x 13 neighbours and score as 11 x 11 do, for 49 taps instead of 121.

use super::KernelSource;
use super::upscale::Sizes;

pub const REFINE: KernelSource = KernelSource {
    name: "refine",
    wgsl: shader!("refine.wgsl"),
};

params! {
    /// `stage` 1: the colours pass; 0: one iteration; 2: the hold pass.
    RefineParams for [REFINE] {
        net_w: u32, net_h: u32, src_w: u32, src_h: u32,
        channels: u32, stage: u32, radius: u32, step: u32,
        inv_space: f32, inv_range: f32, weight: f32, keep: f32,
        inv_change: f32, reset: u32, _pad0: u32, _pad1: u32,
    }
}

bindings! {
    RefineBindings for [REFINE @ "main"] {
        frame: Texture,
        colours: ReadWrite,
        unary: Read,
        q_in: Read,
        q_out: ReadWrite,
    }
}

impl RefineParams {
    pub fn grid(&self) -> [u32; 3] {
        super::unit::grid_16x4(self.net_w, self.net_h, 1)
    }
}

/// The window's radius in network pixels.
pub const RADIUS: usize = 6;
/// Network pixels between the window's taps.
pub const STEP: usize = 2;
/// Most taps a window may hold (`MAX_TAPS` in the shader): 11 x 11.
pub const MAX_TAPS: usize = 121;
/// Most source pixels a network pixel's footprint is averaged over, a side.
pub const GUIDE_SAMPLES: usize = 8;
/// Mean-field iterations (odd: the runtime's ping-pong ends in its first buffer).
pub const ITERATIONS: usize = 3;
/// Spatial sigma, network pixels.
pub const SIGMA_SPACE: f32 = 4.0;
/// Colour sigma, RGB distance with channels in 0..1.
pub const SIGMA_RANGE: f32 = 0.035;
/// The neighbours' weight against the unary.
pub const WEIGHT: f32 = 2.0;
/// How far a guide colour may change between frames (RGB distance, channels in 0..1) and
/// still be held much: camera noise is held, motion is followed.
pub const SIGMA_CHANGE: f32 = 0.05;
/// The three stages of `shaders/refine.wgsl`, as `RefineParams::stage`.
pub const ITERATE: u32 = 0;
pub const COLOURS: u32 = 1;
pub const HOLD: u32 = 2;
const FLOOR: f32 = 1e-6;

/// Whether an upscale by `mode` from `net` to `out` is refined first: edge mode, and an
/// output larger than the network on some side (at the network's own size every mode is the
/// network's own class map).
pub fn applies(mode: super::upscale::Upscale, net: (usize, usize), out: (usize, usize)) -> bool {
    mode == super::upscale::Upscale::Edge && (out.0 > net.0 || out.1 > net.1)
}

/// The parameters of an iteration for `sizes` (the other stages: [`stage_params`]).
pub fn params(s: Sizes) -> RefineParams {
    RefineParams {
        net_w: s.net.0 as u32,
        net_h: s.net.1 as u32,
        src_w: s.src.0 as u32,
        src_h: s.src.1 as u32,
        channels: s.channels as u32,
        radius: RADIUS as u32,
        step: STEP as u32,
        inv_space: 1.0 / (2.0 * SIGMA_SPACE * SIGMA_SPACE),
        inv_range: 1.0 / (2.0 * SIGMA_RANGE * SIGMA_RANGE),
        weight: WEIGHT,
        inv_change: 1.0 / (2.0 * SIGMA_CHANGE * SIGMA_CHANGE),
        ..Default::default()
    }
}

/// The parameters of `stage` over a live camera: `keep` the smoothing's strength (0 keeps
/// nothing), `reset` for a first frame.
pub fn stage_params(s: Sizes, stage: u32, keep: f32, reset: bool) -> RefineParams {
    RefineParams {
        stage,
        keep: keep.clamp(0.0, 1.0),
        reset: reset as u32,
        ..params(s)
    }
}

/// Source pixels `[first, end)` under network pixel `i` of an `n`-pixel side over `m`.
fn footprint(i: usize, n: usize, m: usize) -> (usize, usize) {
    let first = i * m / n;
    (first, ((i + 1) * m / n).max(first + 1))
}

/// Twin of the colours pass: each network pixel's colour (RGB in 0..1), the RGBA8 frame
/// averaged over its footprint at most [`GUIDE_SAMPLES`] a side.
pub fn colours(frame: &[u8], s: Sizes) -> Vec<[f32; 3]> {
    let ((nw, nh), (sw, sh)) = (s.net, s.src);
    let mut out = Vec::with_capacity(nw * nh);
    for y in 0..nh {
        let (y0, y1) = footprint(y, nh, sh);
        let sy = (y1 - y0).div_ceil(GUIDE_SAMPLES);
        for x in 0..nw {
            let (x0, x1) = footprint(x, nw, sw);
            let sx = (x1 - x0).div_ceil(GUIDE_SAMPLES);
            let (mut sum, mut n) = ([0f32; 3], 0f32);
            for v in (y0..y1).step_by(sy) {
                for u in (x0..x1).step_by(sx) {
                    let at = (v * sw + u) * 4;
                    for k in 0..3 {
                        sum[k] += frame[at + k] as f32 / 255.0;
                    }
                    n += 1.0;
                }
            }
            out.push(sum.map(|v| v / n));
        }
    }
    out
}

/// Taps in a window of `radius` with taps `step` apart.
pub fn taps_of(radius: u32, step: u32) -> usize {
    ((2 * radius) / step.max(1) + 1).pow(2) as usize
}

/// Twin of one iteration: `q_in` -> the returned probabilities, with `unary` the
/// probabilities the network gave (planar, `[c][net_h][net_w]`).
pub fn iterate(unary: &[f32], q_in: &[f32], colours: &[[f32; 3]], p: &RefineParams) -> Vec<f32> {
    let (nw, nh, c) = (p.net_w as i64, p.net_h as i64, p.channels as usize);
    let hw = (nw * nh) as usize;
    let (r, step) = (p.radius as i64, p.step.max(1) as usize);
    assert!(
        taps_of(p.radius, p.step) <= MAX_TAPS,
        "window over MAX_TAPS"
    );
    let mut out = vec![0f32; q_in.len()];
    let mut taps: Vec<(usize, f32)> = Vec::with_capacity(MAX_TAPS);
    for y in 0..nh {
        for x in 0..nw {
            let pixel = (y * nw + x) as usize;
            let g0 = colours[pixel];
            taps.clear();
            for dy in (-r..=r).step_by(step) {
                for dx in (-r..=r).step_by(step) {
                    let (tx, ty) = (x + dx, y + dy);
                    let inside = tx >= 0 && ty >= 0 && tx < nw && ty < nh;
                    let w = if (dx != 0 || dy != 0) && inside {
                        let g = colours[(ty * nw + tx) as usize];
                        let d: f32 = (0..3).map(|k| (g[k] - g0[k]) * (g[k] - g0[k])).sum();
                        let e =
                            ((dx * dx + dy * dy) as f32 * p.inv_space + d * p.inv_range).min(30.0);
                        p.weight * (-e).exp()
                    } else {
                        0.0
                    };
                    let at = ty.clamp(0, nh - 1) * nw + tx.clamp(0, nw - 1);
                    taps.push((at as usize, w));
                }
            }
            let e: Vec<f32> = (0..c)
                .map(|k| {
                    let plane = &q_in[k * hw..(k + 1) * hw];
                    let m: f32 = taps.iter().map(|&(i, w)| w * plane[i]).sum();
                    unary[k * hw + pixel].max(FLOOR).ln() + m
                })
                .collect();
            let top = e.iter().copied().fold(f32::MIN, f32::max);
            let sum: f32 = e.iter().map(|v| (v - top).exp()).sum();
            for (k, v) in e.iter().enumerate() {
                out[k * hw + pixel] = (v - top).exp() / sum;
            }
        }
    }
    out
}

/// Twin of the colours pass over a live camera: this frame's colours `fresh` into the ones
/// held, each kept by `p.keep` times a Gaussian of how much it changed.
pub fn hold_colours(fresh: &[[f32; 3]], held: &mut [[f32; 3]], p: &RefineParams) {
    for (old, new) in held.iter_mut().zip(fresh) {
        let d: f32 = (0..3).map(|k| (new[k] - old[k]) * (new[k] - old[k])).sum();
        let keep = p.keep * (-(d * p.inv_change).min(30.0)).exp();
        for k in 0..3 {
            old[k] = if p.reset == 1 {
                new[k]
            } else {
                new[k] + (old[k] - new[k]) * keep
            };
        }
    }
}

/// Twin of the hold pass: the refined probabilities `fresh` into `held`, each pixel kept by
/// `p.keep` times its squared uncertainty (one minus the margin of its two likeliest classes).
pub fn hold(fresh: &[f32], held: &mut [f32], p: &RefineParams) {
    let (c, hw) = (p.channels as usize, (p.net_w * p.net_h) as usize);
    for pixel in 0..hw {
        let (mut e1, mut e2) = (0f32, 0f32);
        for k in 0..c {
            let e = fresh[k * hw + pixel];
            if e > e1 {
                (e2, e1) = (e1, e);
            } else if e > e2 {
                e2 = e;
            }
        }
        let margin = 1.0 - (e1 - e2);
        let keep = p.keep * margin * margin;
        for k in 0..c {
            let i = k * hw + pixel;
            held[i] = if p.reset == 1 {
                fresh[i]
            } else {
                fresh[i] + (held[i] - fresh[i]) * keep
            };
        }
    }
}

/// Twin of the whole refinement of one picture: the colours pass, then [`ITERATIONS`]
/// iterations from the probabilities themselves.
pub fn refine(probs: &[f32], frame: &[u8], s: Sizes) -> Vec<f32> {
    Held::default().refine(probs, frame, s, 0.0)
}

/// What the refinement holds from frame to frame over a live camera (the twin of the
/// runtime's colours and result buffers).
#[derive(Default)]
pub struct Held {
    colours: Vec<[f32; 3]>,
    probs: Vec<f32>,
}

impl Held {
    /// Refines this frame's `probs`, keeping `keep` (the smoothing's strength) of what was
    /// held; a first frame or a new size keeps nothing. The result is also held.
    pub fn refine(&mut self, probs: &[f32], frame: &[u8], s: Sizes, keep: f32) -> Vec<f32> {
        let reset = self.probs.len() != probs.len();
        if reset {
            self.colours = vec![[0.0; 3]; s.net.0 * s.net.1];
            self.probs = vec![0.0; probs.len()];
        }
        hold_colours(
            &colours(frame, s),
            &mut self.colours,
            &stage_params(s, COLOURS, keep, reset),
        );
        let p = params(s);
        let mut q = probs.to_vec();
        for _ in 0..ITERATIONS {
            q = iterate(probs, &q, &self.colours, &p);
        }
        hold(&q, &mut self.probs, &stage_params(s, HOLD, keep, reset));
        self.probs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network map unsure along a line, on a frame with a sharp edge beside it: the
    /// refinement moves the boundary to the frame's edge and leaves confident pixels alone.
    #[test]
    fn an_unsure_boundary_moves_to_the_frames_edge() {
        let (w, h) = (16usize, 8usize);
        let s = Sizes {
            net: (w, h),
            src: (w, h),
            out: (w, h),
            channels: 2,
        };
        // Frame: dark left of x = 6, bright from x = 6.
        let frame: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                if i % w < 6 {
                    [20, 20, 20, 255]
                } else {
                    [230, 230, 230, 255]
                }
            })
            .collect();
        // Network: a slope from class 0 to class 1 whose own boundary is at x = 8.5 (x = 8 a
        // tie), two pixels right of the frame's edge.
        let hw = w * h;
        let mut probs = vec![0f32; 2 * hw];
        for i in 0..hw {
            let x = (i % w) as f32;
            let p1 = ((x - 8.0) / 6.0 + 0.5).clamp(0.02, 0.98);
            probs[i] = 1.0 - p1;
            probs[hw + i] = p1;
        }
        let q = refine(&probs, &frame, s);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let class = (q[hw + i] > q[i]) as usize;
                assert_eq!(
                    class,
                    (x >= 6) as usize,
                    "({x}, {y}): {} {}",
                    q[i],
                    q[hw + i]
                );
                assert!((q[i] + q[hw + i] - 1.0).abs() < 1e-5);
            }
        }
    }

    /// A frame larger than the network: the colours are its footprints' means.
    #[test]
    fn colours_average_each_footprint() {
        let s = Sizes {
            net: (2, 1),
            src: (4, 2),
            out: (4, 2),
            channels: 1,
        };
        let frame: Vec<u8> = [0u8, 255, 100, 100, 0, 255, 100, 100]
            .iter()
            .flat_map(|&v| [v, v, v, 255])
            .collect();
        let g = colours(&frame, s);
        assert!((g[0][0] - 0.5).abs() < 1e-6 && (g[1][1] - 100.0 / 255.0).abs() < 1e-6);
    }
}
