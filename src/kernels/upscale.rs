//! Bringing a class map to the size it is shown or saved at: `shaders/upscale_common.wgsl`
//! (the decision per output pixel, shared by the compute kernel `shaders/upscale.wgsl` and
//! the overlay's fragment shader), the compute kernel's host side (`runtime::upscale` binds
//! and records it), and the plain-Rust twin.
//!
//! The network runs smaller than what is shown. Nearest neighbour turns every class boundary
//! into a staircase of network pixels; `Edge` (joint bilateral upsampling, Kopf et al. 2007)
//! blends the class probabilities of the 4 x 4 nearest network pixels, each weighted by its
//! distance and by how alike the frame's colour is at the output pixel and at that network
//! pixel's centre, so boundaries follow the picture's own edges.

use super::KernelSource;

/// The compute kernel: class probabilities -> classes at the output's size.
pub const UPSCALE: KernelSource = KernelSource {
    name: "upscale",
    wgsl: concat!(
        shader!("upscale_common.wgsl"),
        "\n",
        shader!("upscale.wgsl")
    ),
};

params! {
    /// Over a `grid_w` x `grid_h` window of the output starting at (`x0`, `y0`).
    UpscaleParams for [UPSCALE] {
        net_w: u32, net_h: u32, src_w: u32, src_h: u32,
        out_w: u32, out_h: u32, channels: u32, mode: u32,
        inv_space: f32, inv_range: f32, x0: u32, y0: u32,
        grid_w: u32, grid_h: u32, _pad0: u32, _pad1: u32,
    }
}

bindings! {
    UpscaleBindings for [UPSCALE @ "main"] {
        probs: Read,
        guide: Texture,
        classes: ReadWrite,
    }
}

impl UpscaleParams {
    pub fn grid(&self) -> [u32; 3] {
        super::unit::grid_16x4(self.grid_w, self.grid_h, 1)
    }
}

/// How class probabilities at the network's size become classes at the output's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Upscale {
    /// The nearest network pixel's class.
    Nearest,
    /// The 2 x 2 nearest network pixels' probabilities blended by distance.
    Bilinear,
    /// Joint bilateral upsampling guided by the frame.
    #[default]
    Edge,
}

impl Upscale {
    pub const ALL: [Upscale; 3] = [Upscale::Nearest, Upscale::Bilinear, Upscale::Edge];

    /// The shader's `mode`.
    pub fn mode(self) -> u32 {
        match self {
            Upscale::Nearest => 0,
            Upscale::Bilinear => 1,
            Upscale::Edge => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Upscale::Nearest => "nearest",
            Upscale::Bilinear => "bilinear",
            Upscale::Edge => "edge",
        }
    }
}

impl std::fmt::Display for Upscale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Upscale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Upscale::ALL
            .into_iter()
            .find(|u| u.name() == s)
            .ok_or_else(|| format!("unknown upsampling {s:?}: nearest, bilinear or edge"))
    }
}

/// The edge mode's spatial sigma, in network pixels.
pub const SIGMA_SPACE: f32 = 1.0;
/// The edge mode's colour sigma: RGB distance, channels in 0..1.
pub const SIGMA_RANGE: f32 = 0.1;

/// The shader's `inv_space` and `inv_range`: 1 / (2 sigma^2).
pub fn inverse_sigmas() -> (f32, f32) {
    (
        1.0 / (2.0 * SIGMA_SPACE * SIGMA_SPACE),
        1.0 / (2.0 * SIGMA_RANGE * SIGMA_RANGE),
    )
}

/// The sizes an upscale works between: the network's class probabilities (`channels` planes of
/// `net`), the frame that guides it (`src`, RGBA8) and the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub net: (usize, usize),
    pub src: (usize, usize),
    pub out: (usize, usize),
    pub channels: usize,
}

impl Sizes {
    /// Whether the output is larger than the network on some side: otherwise every mode is
    /// nearest (the classes are taken as they are).
    pub fn upscales(&self) -> bool {
        self.out.0 > self.net.0 || self.out.1 > self.net.1
    }
}

/// The pixel of an `m`-pixel side nearest the centre of pixel `i` of an `n`-pixel side.
fn nearest(i: usize, n: usize, m: usize) -> usize {
    ((2 * i + 1) * m / (2 * n)).min(m - 1)
}

/// Twin of `upscale_class` (`shaders/upscale_common.wgsl`): the class of output pixel
/// (`x`, `y`). `probs` is planar (`[c][net_h][net_w]`), `guide` the frame as RGBA8.
pub fn class_at(probs: &[f32], guide: &[u8], s: Sizes, mode: Upscale, x: usize, y: usize) -> u8 {
    class_at_with(probs, guide, s, mode, (inverse_sigmas(), EDGE_TAPS), x, y)
}

/// The edge mode's window: this many network pixels a side (`EDGE_TAPS` in the shader).
pub const EDGE_TAPS: usize = 4;

/// [`class_at`] with the edge mode's `(inv_space, inv_range)` and window given (for a sweep).
pub fn class_at_with(
    probs: &[f32],
    guide: &[u8],
    s: Sizes,
    mode: Upscale,
    ((inv_space, inv_range), edge_taps): ((f32, f32), usize),
    x: usize,
    y: usize,
) -> u8 {
    let (nw, nh) = s.net;
    let hw = nw * nh;
    let texel = |px: usize, py: usize, n_w: usize, n_h: usize| -> [f32; 3] {
        let at = (nearest(py, n_h, s.src.1) * s.src.0 + nearest(px, n_w, s.src.0)) * 4;
        [0, 1, 2].map(|k| guide[at + k] as f32 / 255.0)
    };
    let mut taps: Vec<(usize, f32)> = Vec::with_capacity(edge_taps * edge_taps);
    if mode == Upscale::Nearest || !s.upscales() {
        taps.push((nearest(y, s.out.1, nh) * nw + nearest(x, s.out.0, nw), 1.0));
    } else {
        let fx = (x as f32 + 0.5) * nw as f32 / s.out.0 as f32 - 0.5;
        let fy = (y as f32 + 0.5) * nh as f32 / s.out.1 as f32 - 0.5;
        let (n, first) = if mode == Upscale::Edge {
            (edge_taps as i64, 1 - edge_taps as i64 / 2)
        } else {
            (2, 0)
        };
        let g0 = if mode == Upscale::Edge {
            texel(x, y, s.out.0, s.out.1)
        } else {
            [0.0; 3]
        };
        let (x0, y0) = (fx.floor() as i64 + first, fy.floor() as i64 + first);
        for j in 0..n {
            let ty = y0 + j;
            let cy = ty.clamp(0, nh as i64 - 1) as usize;
            let dy = fy - ty as f32;
            for i in 0..n {
                let tx = x0 + i;
                let cx = tx.clamp(0, nw as i64 - 1) as usize;
                let dx = fx - tx as f32;
                let w = if mode == Upscale::Edge {
                    let g = texel(cx, cy, nw, nh);
                    let d: f32 = (0..3).map(|k| (g[k] - g0[k]) * (g[k] - g0[k])).sum();
                    (-((dx * dx + dy * dy) * inv_space + d * inv_range).min(30.0)).exp()
                } else {
                    (1.0 - dx.abs()).max(0.0) * (1.0 - dy.abs()).max(0.0)
                };
                taps.push((cy * nw + cx, w));
            }
        }
    }
    let mut best = (0, -1.0f32);
    for c in 0..s.channels {
        let v: f32 = taps.iter().map(|&(i, w)| w * probs[c * hw + i]).sum();
        if v > best.1 {
            best = (c, v);
        }
    }
    best.0 as u8
}

/// Twin of `shaders/upscale.wgsl` over the whole output: one class per output pixel.
pub fn upscale(probs: &[f32], guide: &[u8], s: Sizes, mode: Upscale) -> Vec<u8> {
    let (w, h) = s.out;
    (0..w * h)
        .map(|i| class_at(probs, guide, s, mode, i % w, i / w))
        .collect()
}

/// Per-pixel softmax of planar logits (`c` planes of `hw` pixels): the probabilities
/// [`upscale`] blends.
pub fn softmax(logits: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0; logits.len()];
    for i in 0..hw {
        let top = (0..c).map(|k| logits[k * hw + i]).fold(f32::MIN, f32::max);
        let sum: f32 = (0..c).map(|k| (logits[k * hw + i] - top).exp()).sum();
        for k in 0..c {
            out[k * hw + i] = (logits[k * hw + i] - top).exp() / sum;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertical edge in the frame between network pixels: nearest puts the class boundary on
    /// the network's grid, edge on the frame's edge.
    #[test]
    fn edge_follows_the_frame_where_nearest_follows_the_grid() {
        // Network 4x1, output and frame 16x1: classes 0 | 1 between network pixels 1 and 2
        // (output x = 8), but the frame's edge is at x = 6.
        let s = Sizes {
            net: (4, 1),
            src: (16, 1),
            out: (16, 1),
            channels: 2,
        };
        let p1 = [0.1, 0.4, 0.6, 0.9];
        let probs: Vec<f32> = p1.iter().map(|p| 1.0 - p).chain(p1).collect();
        let guide: Vec<u8> = (0..16)
            .flat_map(|x| {
                if x < 6 {
                    [20, 20, 20, 255]
                } else {
                    [220, 220, 220, 255]
                }
            })
            .collect();
        let classes = |mode| upscale(&probs, &guide, s, mode);
        assert_eq!(
            classes(Upscale::Nearest),
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
        );
        assert_eq!(
            classes(Upscale::Bilinear),
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
        );
        assert_eq!(
            classes(Upscale::Edge),
            [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        );
    }

    #[test]
    fn one_pixel_outputs_and_extreme_aspects_work() {
        let probs = softmax(&[0.0, 1.0, 2.0, 0.5, 0.2, 0.1], 2, 3);
        let guide = vec![128; 3 * 4];
        for out in [(1, 1), (1, 50), (300, 2)] {
            let s = Sizes {
                net: (3, 1),
                src: (3, 1),
                out,
                channels: 2,
            };
            for mode in Upscale::ALL {
                assert_eq!(upscale(&probs, &guide, s, mode).len(), out.0 * out.1);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for u in Upscale::ALL {
            assert_eq!(u.name().parse::<Upscale>(), Ok(u));
        }
        assert!("cubic".parse::<Upscale>().unwrap_err().contains("nearest"));
    }
}
