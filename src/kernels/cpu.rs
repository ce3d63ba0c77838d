//! Plain-Rust twins of the WGSL kernels, written for clarity rather than speed. The tests
//! hold every shader and the whole GPU network against these.

use crate::model::Normalization;
use crate::model::graph::{Conv, DType, Graph, Op, Shape};

/// A dense `C x H x W` f32 tensor (batch 1, NCHW as PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: Shape) -> Self {
        Tensor {
            shape,
            data: vec![0.0; shape.len()],
        }
    }

    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.shape.h + y) * self.shape.w + x]
    }
}

fn prelu(v: f32, slope: f32) -> f32 {
    if v >= 0.0 { v } else { v * slope }
}

/// Source pixel coordinate and weight for output coordinate `o` when resizing `src` -> `dst`
/// with half-pixel centres (PyTorch `align_corners=False`), clamped at the edges.
pub fn bilinear_tap(o: usize, src: usize, dst: usize) -> (usize, usize, f32) {
    let s = ((o as f32 + 0.5) * (src as f32 / dst as f32) - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(src - 1);
    let i1 = (i0 + 1).min(src - 1);
    (i0, i1, s - i0 as f32)
}

/// RGBA8 pixels (`sw` x `sh`) -> normalised `3 x h x w` input, bilinear when sizes differ.
pub fn preprocess(
    rgba: &[u8],
    sw: usize,
    sh: usize,
    w: usize,
    h: usize,
    norm: &Normalization,
) -> Tensor {
    let mut t = Tensor::zeros(Shape { c: 3, h, w });
    let px = |x: usize, y: usize, c: usize| rgba[(y * sw + x) * 4 + c] as f32 / 255.0;
    for y in 0..h {
        let (y0, y1, fy) = bilinear_tap(y, sh, h);
        for x in 0..w {
            let (x0, x1, fx) = bilinear_tap(x, sw, w);
            for c in 0..3 {
                let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * fx;
                let bottom = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * fx;
                let v = top + (bottom - top) * fy;
                t.data[(c * h + y) * w + x] = (v - norm.mean[c]) / norm.std[c];
            }
        }
    }
    t
}

/// Raw convolution sum plus bias, no activation. Transposed convolutions are computed in
/// scatter form, independently of the shader's gather form.
fn conv_sum(input: &Tensor, conv: &Conv, out_shape: Shape) -> Tensor {
    let g = &conv.geom;
    let [kh, kw] = g.kernel;
    let (ih, iw) = (input.shape.h, input.shape.w);
    let (oh, ow) = (out_shape.h, out_shape.w);
    let mut out = Tensor::zeros(out_shape);
    for co in 0..conv.cout {
        let plane = &mut out.data[co * oh * ow..(co + 1) * oh * ow];
        plane.fill(conv.bias[co]);
        for ci in 0..conv.cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = conv.weight[((co * conv.cin + ci) * kh + ky) * kw + kx];
                    let dy = (ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    let dx = (kx * g.dilation[1]) as isize - g.pad[1] as isize;
                    if g.transposed {
                        for iy in 0..ih {
                            let oy = (iy * g.stride[0]) as isize + dy;
                            if oy < 0 || oy >= oh as isize {
                                continue;
                            }
                            for ix in 0..iw {
                                let ox = (ix * g.stride[1]) as isize + dx;
                                if ox >= 0 && ox < ow as isize {
                                    plane[oy as usize * ow + ox as usize] +=
                                        wv * input.at(ci, iy, ix);
                                }
                            }
                        }
                    } else {
                        for oy in 0..oh {
                            let iy = (oy * g.stride[0]) as isize + dy;
                            if iy < 0 || iy >= ih as isize {
                                continue;
                            }
                            for ox in 0..ow {
                                let ix = (ox * g.stride[1]) as isize + dx;
                                if ix >= 0 && ix < iw as isize {
                                    plane[oy * ow + ox] +=
                                        wv * input.at(ci, iy as usize, ix as usize);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Convolution + folded BatchNorm + PReLU, then optionally `+ residual` (zero-padded to the
/// output's channels) and a second PReLU.
pub fn conv(
    input: &Tensor,
    conv: &Conv,
    residual: Option<(&Tensor, &[f32])>,
    out_shape: Shape,
) -> Tensor {
    let mut out = conv_sum(input, conv, out_shape);
    let hw = out_shape.h * out_shape.w;
    for co in 0..conv.cout {
        for i in 0..hw {
            let mut v = prelu(out.data[co * hw + i], conv.slope[co]);
            if let Some((res, post)) = residual {
                if co < res.shape.c {
                    v += res.data[co * hw + i];
                }
                v = prelu(v, post[co]);
            }
            out.data[co * hw + i] = v;
        }
    }
    out
}

/// ENet's initial block: conv channels first, then the pooled input channels.
#[allow(clippy::too_many_arguments)]
pub fn initial(
    input: &Tensor,
    conv_op: &Conv,
    pool_kernel: usize,
    pool_pad: usize,
    pool_scale: &[f32],
    pool_shift: &[f32],
    pool_slope: &[f32],
    out_shape: Shape,
) -> Tensor {
    let conv_shape = Shape {
        c: conv_op.cout,
        ..out_shape
    };
    let main = conv(input, conv_op, None, conv_shape);
    let mut out = Tensor::zeros(out_shape);
    out.data[..main.data.len()].copy_from_slice(&main.data);
    let s = conv_op.geom.stride[0];
    for c in 0..input.shape.c {
        for oy in 0..out_shape.h {
            for ox in 0..out_shape.w {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..pool_kernel {
                    for kx in 0..pool_kernel {
                        let iy = (oy * s + ky) as isize - pool_pad as isize;
                        let ix = (ox * s + kx) as isize - pool_pad as isize;
                        if iy >= 0
                            && ix >= 0
                            && (iy as usize) < input.shape.h
                            && (ix as usize) < input.shape.w
                        {
                            m = m.max(input.at(c, iy as usize, ix as usize));
                        }
                    }
                }
                let v = prelu(m * pool_scale[c] + pool_shift[c], pool_slope[c]);
                out.data[((conv_op.cout + c) * out_shape.h + oy) * out_shape.w + ox] = v;
            }
        }
    }
    out
}

/// 2x2 stride 2 max-pool with PyTorch's indices (`y * W + x` in the input plane); on ties the
/// first maximum in row-major order wins.
pub fn maxpool(input: &Tensor) -> (Tensor, Vec<u32>) {
    let Shape { c, h, w } = input.shape;
    let o = Shape {
        c,
        h: h / 2,
        w: w / 2,
    };
    let mut out = Tensor::zeros(o);
    let mut idx = vec![0u32; o.len()];
    for ch in 0..c {
        for oy in 0..o.h {
            for ox in 0..o.w {
                let mut best = input.at(ch, oy * 2, ox * 2);
                let mut best_i = oy * 2 * w + ox * 2;
                for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                    let (y, x) = (oy * 2 + dy, ox * 2 + dx);
                    let v = input.at(ch, y, x);
                    // As PyTorch: strictly greater replaces, and NaN propagates.
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = y * w + x;
                    }
                }
                let i = (ch * o.h + oy) * o.w + ox;
                out.data[i] = best;
                idx[i] = best_i as u32;
            }
        }
    }
    (out, idx)
}

/// Max-unpool: each value goes back to where its index says; everything else is zero.
pub fn unpool(input: &Tensor, indices: &[u32], out_shape: Shape) -> Tensor {
    let mut out = Tensor::zeros(out_shape);
    let plane = out_shape.h * out_shape.w;
    let in_plane = input.shape.h * input.shape.w;
    for c in 0..input.shape.c {
        for i in 0..in_plane {
            out.data[c * plane + indices[c * in_plane + i] as usize] = input.data[c * in_plane + i];
        }
    }
    out
}

/// Class index of the largest logit per pixel; the first wins on ties.
pub fn argmax(logits: &Tensor) -> Vec<u32> {
    let hw = logits.shape.h * logits.shape.w;
    (0..hw)
        .map(|i| {
            let mut best = 0;
            for c in 1..logits.shape.c {
                if logits.data[c * hw + i] > logits.data[best * hw + i] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}

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

/// Index of the class-map pixel that frame pixel `o` (of `frame` pixels) reads, out of
/// `map` pixels: nearest neighbour, in integers, as the overlay shader computes it.
pub fn nearest_index(o: usize, frame: usize, map: usize) -> usize {
    ((2 * o + 1) * map / (2 * frame)).min(map - 1)
}

/// What the overlay draws: the twin's and the page's description of `overlay.wgsl`'s
/// parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Class colours blended over the frame.
    #[default]
    Overlay,
    /// Class colours only (void and hidden classes black).
    Mask,
    /// The frame on the left, the mask on the right, each half the target's width.
    SideBySide,
}

/// What a target pixel shows, as `overlay.wgsl` decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Blend,
    Frame,
    Mask,
    /// The odd last column of a side-by-side target.
    Nothing,
}

/// Target pixel (`x`, of width `out_w`) -> (what it shows, panel width, the panel's column,
/// mirrored when asked).
pub fn view_column(x: usize, out_w: usize, view: View, mirror: bool) -> (Shown, usize, usize) {
    let (mut x, pw, shown) = match view {
        View::Overlay => (x, out_w, Shown::Blend),
        View::Mask => (x, out_w, Shown::Mask),
        View::SideBySide => {
            let pw = (out_w / 2).max(1);
            match x {
                x if x < pw => (x, pw, Shown::Frame),
                x if x < 2 * pw => (x - pw, pw, Shown::Mask),
                x => return (Shown::Nothing, pw, x),
            }
        }
    };
    x = x.min(pw - 1);
    if mirror {
        x = pw - 1 - x;
    }
    (shown, pw, x)
}

/// The class-map pixel under the point (`u`, `v`) of the target, both in [0, 1): the page's
/// "which class is this" for a tap, computed as the shader picks it. None off the picture.
pub fn class_pixel_at(
    u: f64,
    v: f64,
    out: (usize, usize),
    map: (usize, usize),
    view: View,
    mirror: bool,
) -> Option<(usize, usize)> {
    if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) || out.0 == 0 || out.1 == 0 {
        return None;
    }
    let x = ((u * out.0 as f64) as usize).min(out.0 - 1);
    let y = ((v * out.1 as f64) as usize).min(out.1 - 1);
    let (shown, pw, x) = view_column(x, out.0, view, mirror);
    if shown == Shown::Nothing {
        return None;
    }
    Some((nearest_index(x, pw, map.0), nearest_index(y, out.1, map.1)))
}

/// How `overlay.wgsl` colours: the palette, which classes are hidden (missing entries are
/// shown), which one is void, the blend opacity, the view and the mirror.
#[derive(Clone, Copy, Debug)]
pub struct Compose<'a> {
    pub palette: &'a [[u8; 3]],
    pub hidden: &'a [bool],
    pub void: Option<usize>,
    pub alpha: f32,
    pub view: View,
    pub mirror: bool,
}

/// Bilinear sample of an RGBA8 frame at normalised (`u`, `v`), edges clamped, as a GPU
/// sampler with linear filtering reads it; channels 0..1.
fn sample_bilinear(frame: &[u8], fw: usize, fh: usize, u: f32, v: f32) -> [f32; 3] {
    let fx = (u * fw as f32 - 0.5).clamp(0.0, (fw - 1) as f32);
    let fy = (v * fh as f32 - 0.5).clamp(0.0, (fh - 1) as f32);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(fw - 1), (y0 + 1).min(fh - 1));
    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
    let px = |x: usize, y: usize, k: usize| frame[(y * fw + x) * 4 + k] as f32 / 255.0;
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let top = px(x0, y0, k) * (1.0 - ax) + px(x1, y0, k) * ax;
        let bottom = px(x0, y1, k) * (1.0 - ax) + px(x1, y1, k) * ax;
        *o = top * (1.0 - ay) + bottom * ay;
    }
    out
}

/// Twin of `overlay.wgsl`: an `out_w` x `out_h` RGBA8 picture of the frame (RGBA8, `fw` x
/// `fh`) and its class map (`mw` x `mh`) as `opts` asks.
#[allow(clippy::too_many_arguments)]
pub fn compose(
    frame: &[u8],
    fw: usize,
    fh: usize,
    classes: &[u8],
    mw: usize,
    mh: usize,
    opts: &Compose,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; out_w * out_h * 4];
    for y in 0..out_h {
        let row = nearest_index(y, out_h, mh) * mw;
        for x in 0..out_w {
            let i = (y * out_w + x) * 4;
            out[i + 3] = 255;
            let (shown, pw, x) = view_column(x, out_w, opts.view, opts.mirror);
            if shown == Shown::Nothing {
                continue;
            }
            let u = (x as f32 + 0.5) / pw as f32;
            let v = (y as f32 + 0.5) / out_h as f32;
            let src = sample_bilinear(frame, fw, fh, u, v);
            let c = classes[row + nearest_index(x, pw, mw)] as usize;
            let color = match opts.palette.get(c) {
                Some(rgb)
                    if Some(c) != opts.void && !opts.hidden.get(c).copied().unwrap_or(false) =>
                {
                    Some(rgb.map(|v| v as f32 / 255.0))
                }
                _ => None,
            };
            for k in 0..3 {
                let value = match (shown, color) {
                    (Shown::Frame, _) | (Shown::Blend, None) => src[k],
                    (Shown::Blend, Some(rgb)) => src[k] + (rgb[k] - src[k]) * opts.alpha,
                    (Shown::Mask, Some(rgb)) => rgb[k],
                    _ => 0.0,
                };
                out[i + k] = (value * 255.0).round() as u8;
            }
        }
    }
    out
}

/// The overlay at the frame's own size: the frame (RGBA8, `fw` x `fh`) with each pixel's class
/// colour blended over it at opacity `alpha`; the void class and unknown classes stay
/// untouched.
#[allow(clippy::too_many_arguments)]
pub fn overlay(
    frame: &[u8],
    fw: usize,
    fh: usize,
    classes: &[u8],
    mw: usize,
    mh: usize,
    palette: &[[u8; 3]],
    void: Option<usize>,
    alpha: f32,
) -> Vec<u8> {
    let opts = Compose {
        palette,
        hidden: &[],
        void,
        alpha,
        view: View::Overlay,
        mirror: false,
    };
    compose(frame, fw, fh, classes, mw, mh, &opts, fw, fh)
}

enum Value {
    F32(Tensor),
    U32(Vec<u32>),
    Empty,
}

/// Runs the whole graph; returns the output tensor (logits).
pub fn run(graph: &Graph, input: Tensor) -> Tensor {
    let shapes = graph
        .shapes(input.shape.h, input.shape.w)
        .expect("input large enough for the graph");
    let last = graph.last_use();
    let mut vals: Vec<Value> = (0..graph.tensors.len()).map(|_| Value::Empty).collect();
    vals[0] = Value::F32(input);
    for (i, op) in graph.ops.iter().enumerate() {
        let produced: Vec<(usize, Value)> = {
            let get = |t: usize| match &vals[t] {
                Value::F32(x) => x,
                _ => panic!("tensor {t} is not a live f32 tensor"),
            };
            match op {
                Op::Initial {
                    input,
                    output,
                    conv: c,
                    pool_kernel,
                    pool_pad,
                    pool_scale,
                    pool_shift,
                    pool_slope,
                } => {
                    let r = initial(
                        get(*input),
                        c,
                        *pool_kernel,
                        *pool_pad,
                        pool_scale,
                        pool_shift,
                        pool_slope,
                        shapes[*output],
                    );
                    vec![(*output, Value::F32(r))]
                }
                Op::Conv {
                    input,
                    output,
                    conv: c,
                    residual,
                } => {
                    let res = residual
                        .as_ref()
                        .map(|r| (get(r.tensor), r.slope.as_slice()));
                    vec![(
                        *output,
                        Value::F32(conv(get(*input), c, res, shapes[*output])),
                    )]
                }
                Op::MaxPool {
                    input,
                    output,
                    indices,
                } => {
                    let (o, idx) = maxpool(get(*input));
                    vec![(*output, Value::F32(o)), (*indices, Value::U32(idx))]
                }
                Op::Unpool {
                    input,
                    indices,
                    output,
                    ..
                } => {
                    let Value::U32(idx) = &vals[*indices] else {
                        panic!("indices tensor {indices} is not live")
                    };
                    vec![(
                        *output,
                        Value::F32(unpool(get(*input), idx, shapes[*output])),
                    )]
                }
            }
        };
        for (t, v) in produced {
            vals[t] = v;
        }
        for t in op.inputs() {
            if last[t] == Some(i) && t != graph.output {
                vals[t] = Value::Empty;
            }
        }
        debug_assert!(op.outputs().iter().all(|&t| match graph.tensors[t].dtype {
            DType::F32 => matches!(vals[t], Value::F32(_)),
            DType::U32 => matches!(vals[t], Value::U32(_)),
        }));
    }
    match std::mem::replace(&mut vals[graph.output], Value::Empty) {
        Value::F32(t) => t,
        _ => panic!("graph output is not an f32 tensor"),
    }
}
