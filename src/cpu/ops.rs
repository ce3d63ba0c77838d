//! The CPU engine's memory-bound steps, NHWC: the frame in, pooling, unpooling and the
//! argmax out. Each works on a range of output rows so that rows can go to threads.

use std::ops::Range;

use crate::model::Normalization;

/// Per output coordinate: the two source coordinates and the weight of the second, as the
/// preprocessing shader and its twin resize (half-pixel centres, clamped).
pub fn taps(src: usize, dst: usize) -> Vec<(u32, u32, f32)> {
    (0..dst)
        .map(|o| {
            let (a, b, f) = crate::kernels::twin::bilinear_tap(o, src, dst);
            (a as u32, b as u32, f)
        })
        .collect()
}

/// RGBA8 `sw`-wide rows -> normalised `w x 3` NHWC rows `rows` of `out`.
#[allow(clippy::too_many_arguments)]
pub fn preprocess(
    rgba: &[u8],
    sw: usize,
    xt: &[(u32, u32, f32)],
    yt: &[(u32, u32, f32)],
    norm: &Normalization,
    out: &mut [f32],
    rows: Range<usize>,
) {
    let w = xt.len();
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| norm.mean[c] / norm.std[c]);
    let first = rows.start;
    for y in rows {
        let (y0, y1, fy) = yt[y];
        let (r0, r1) = (y0 as usize * sw, y1 as usize * sw);
        let o = &mut out[(y - first) * w * 3..(y - first + 1) * w * 3];
        for (x, &(x0, x1, fx)) in xt.iter().enumerate() {
            let (x0, x1) = (x0 as usize, x1 as usize);
            for c in 0..3 {
                let p = |r: usize, x: usize| rgba[(r + x) * 4 + c] as f32;
                let top = p(r0, x0) + (p(r0, x1) - p(r0, x0)) * fx;
                let bottom = p(r1, x0) + (p(r1, x1) - p(r1, x0)) * fx;
                o[x * 3 + c] = (top + (bottom - top) * fy) * scale[c] - shift[c];
            }
        }
    }
}

/// The initial block's pool branch: a `k x k` max-pool (padding `pad`, stride `stride`) of
/// the `c`-channel input, its folded BatchNorm and PReLU, into channels `off..off + c` of the
/// `ostride`-channel output rows `rows` (`out` starts at the first of them).
#[allow(clippy::too_many_arguments)]
pub fn initial_pool(
    input: &[f32],
    (ih, iw, c): (usize, usize, usize),
    (k, pad, stride): (usize, usize, usize),
    (scale, shift, slope): (&[f32], &[f32], &[f32]),
    out: &mut [f32],
    (ow, ostride, off): (usize, usize, usize),
    rows: Range<usize>,
) {
    let first = rows.start;
    let window = |o: usize, n: usize| {
        let lo = (o * stride).saturating_sub(pad);
        let hi = (o * stride + k).saturating_sub(pad).min(n);
        lo..hi
    };
    for oy in rows {
        let ys = window(oy, ih);
        for ox in 0..ow {
            let xs = window(ox, iw);
            let o = ((oy - first) * ow + ox) * ostride + off;
            for ch in 0..c {
                let mut m = f32::NEG_INFINITY;
                for iy in ys.clone() {
                    for ix in xs.clone() {
                        m = m.max(input[(iy * iw + ix) * c + ch]);
                    }
                }
                let v = m * scale[ch] + shift[ch];
                out[o + ch] = if v >= 0.0 { v } else { v * slope[ch] };
            }
        }
    }
}

/// 2x2 stride-2 max-pool of a `h x w x c` input into output rows `rows`, with PyTorch's
/// indices (`y * w + x` in the input plane; the first maximum in row-major order wins; NaN
/// propagates). `out` and `idx` start at the first row.
pub fn maxpool(
    input: &[f32],
    (w, c): (usize, usize),
    out: &mut [f32],
    idx: &mut [u32],
    rows: Range<usize>,
) {
    let ow = w / 2;
    let first = rows.start;
    for oy in rows {
        for ox in 0..ow {
            let o = ((oy - first) * ow + ox) * c;
            let at = |dy: usize, dx: usize| ((oy * 2 + dy) * w + ox * 2 + dx) as u32;
            let cand = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
            let base = cand.map(|p| p as usize * c);
            for ch in 0..c {
                let mut best = input[base[0] + ch];
                let mut best_i = cand[0];
                for k in 1..4 {
                    let v = input[base[k] + ch];
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = cand[k];
                    }
                }
                out[o + ch] = best;
                idx[o + ch] = best_i;
            }
        }
    }
}

/// Max-unpool of input rows (`input` and `idx` hold just them, `c` channels a pixel): each
/// value goes to the output pixel its index names. `out` holds the output rows those input
/// rows pooled, zeroed here first, starting at output pixel `base`.
pub fn unpool(input: &[f32], idx: &[u32], c: usize, out: &mut [f32], base: usize) {
    out.fill(0.0);
    for (i, (&v, &at)) in input.iter().zip(idx).enumerate() {
        out[(at as usize - base) * c + i % c] = v;
    }
}

/// The class of each pixel of `c`-channel logits: the first largest wins.
pub fn argmax(logits: &[f32], c: usize, classes: &mut [u8]) {
    for (px, class) in logits.chunks_exact(c).zip(classes.iter_mut()) {
        // Branch-free: a select per class, not a mispredicted jump.
        let (mut best, mut value) = (0u8, px[0]);
        for (k, &v) in px.iter().enumerate().skip(1) {
            let better = v > value;
            best = if better { k as u8 } else { best };
            value = if better { v } else { value };
        }
        *class = best;
    }
}

/// `e^x` to within 2e-7 relative, without a library call (wasm has no exp instruction):
/// `2^n * p(r)` with `x = n ln 2 + r`, `|r| <= ln 2 / 2`, `p` of degree 6.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the float adder: exact for |v| < 2^22.
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// The smoothing of `shaders/smooth.wgsl` (its twin: `kernels::twin::smooth`), NHWC and
/// without allocating: this frame's softmax blended into `probs` (the previous frame's
/// blend, updated in place; ignored when `reset`), keeping `strength * (1 - (p1 - p2))^2` of
/// the old probabilities per pixel. `shown` gets the blend's class per pixel.
pub fn smooth(
    logits: &[f32],
    c: usize,
    probs: &mut [f32],
    strength: f32,
    reset: bool,
    shown: &mut [u8],
) {
    let strength = strength.clamp(0.0, 1.0);
    let mut e = [0.0f32; 256];
    for ((px, prev), class) in logits
        .chunks_exact(c)
        .zip(probs.chunks_exact_mut(c))
        .zip(shown.iter_mut())
    {
        let top = px.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut sum, mut first, mut second) = (0.0f32, 0.0f32, 0.0f32);
        for (k, &v) in px.iter().enumerate() {
            let x = exp(v - top);
            e[k] = x;
            sum += x;
            if x > first {
                second = first;
                first = x;
            } else if x > second {
                second = x;
            }
        }
        let inv = 1.0 / sum;
        let margin = 1.0 - (first - second) * inv;
        let keep = if reset {
            0.0
        } else {
            strength * margin * margin
        };
        let mut best = (0, -1.0f32);
        for (k, p) in prev.iter_mut().enumerate() {
            let q = e[k] * inv;
            let b = q + (*p - q) * keep;
            *p = b;
            if b > best.1 {
                best = (k, b);
            }
        }
        *class = best.0 as u8;
    }
}
