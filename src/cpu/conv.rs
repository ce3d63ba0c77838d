//! Convolutions on the CPU: weights packed once per engine into chunks of output channels,
//! activations NHWC, and one register-blocked inner kernel for every geometry (1x1, 3x3,
//! dilated, asymmetric, strided, transposed). It keeps `MR` output pixels by two vectors of
//! output channels in registers and, per input channel, broadcasts each pixel's value
//! against the chunk's weights: the scheme of XNNPACK's and MLAS's direct convolutions.
//! Bias, PReLU and the residual's add and PReLU are applied as the results are stored.

use super::simd::{Isa, Portable, Simd};
use crate::model::graph::{Conv, ConvGeom};

/// Output pixels the inner kernel computes at once: 6 x 2 vectors of accumulators, with the
/// two weight vectors and a broadcast, fill 15 of x86-64's 16 vector registers.
pub const MR: usize = 6;
/// Largest kernel side packed (ENet's largest is 5).
pub const MAX_K: usize = 7;
const MAX_TAPS: usize = MAX_K * MAX_K;

/// A convolution's weights laid out for the inner kernel of one instruction set.
#[derive(Clone, Debug)]
pub struct Packed {
    pub cin: usize,
    pub cout: usize,
    pub geom: ConvGeom,
    taps: usize,
    chunk: usize,
    chunks: usize,
    /// `[chunk][tap][cin][chunk width]`.
    weight: Vec<f32>,
    /// Padded to `chunks * chunk`; padding channels compute zeros that are never stored.
    bias: Vec<f32>,
    slope: Vec<f32>,
    /// The residual's PReLU, empty without a residual.
    post: Vec<f32>,
}

impl Packed {
    /// `None` when the kernel is larger than [`MAX_K`].
    pub fn new(conv: &Conv, post: Option<&[f32]>, isa: Isa) -> Option<Packed> {
        let [kh, kw] = conv.geom.kernel;
        if kh > MAX_K || kw > MAX_K || kh == 0 || kw == 0 {
            return None;
        }
        let taps = kh * kw;
        let chunk = isa.chunk();
        let chunks = conv.cout.div_ceil(chunk);
        let padded = chunks * chunk;
        let mut weight = vec![0.0; chunks * taps * conv.cin * chunk];
        for co in 0..conv.cout {
            let (ch, lane) = (co / chunk, co % chunk);
            for ci in 0..conv.cin {
                for t in 0..taps {
                    let src = (co * conv.cin + ci) * taps + t;
                    weight[((ch * taps + t) * conv.cin + ci) * chunk + lane] = conv.weight[src];
                }
            }
        }
        let pad = |v: &[f32], fill: f32| {
            let mut p = v.to_vec();
            p.resize(padded, fill);
            p
        };
        Some(Packed {
            cin: conv.cin,
            cout: conv.cout,
            geom: conv.geom,
            taps,
            chunk,
            chunks,
            weight,
            bias: pad(&conv.bias, 0.0),
            slope: pad(&conv.slope, 1.0),
            post: post.map(|p| pad(p, 1.0)).unwrap_or_default(),
        })
    }
}

/// One convolution's operands for a frame. Raw pointers because rows are written from
/// several threads at once; every row writes only its own pixels.
pub struct ConvArgs<'a> {
    pub p: &'a Packed,
    /// `ih x iw x cin`, NHWC.
    pub input: *const f32,
    pub ih: usize,
    pub iw: usize,
    /// Output pixels `oh x ow`, each `ostride` floats, this convolution's channels starting at
    /// `ooff` (the initial block writes its pool branch beside them).
    pub out: *mut f32,
    pub oh: usize,
    pub ow: usize,
    pub ostride: usize,
    pub ooff: usize,
    /// `oh x ow x res_c`, added after the activation (zero-padded to `cout`); null for none.
    pub res: *const f32,
    pub res_c: usize,
    /// At least `cin` zeros: what padding taps read.
    pub zero: *const f32,
}

// SAFETY: the pointers are only read, except `out`, where each row is written by one thread.
unsafe impl Sync for ConvArgs<'_> {}
unsafe impl Send for ConvArgs<'_> {}

/// Computes output rows `rows` with the best kernel for `isa`.
///
/// # Safety
/// The pointers of `a` must hold the sizes they describe, and no other thread may write
/// these rows.
pub unsafe fn conv_rows(isa: Isa, a: &ConvArgs, rows: std::ops::Range<usize>) {
    debug_assert_eq!(isa.chunk(), a.p.chunk);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { rows_avx2(a, rows) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { rows_generic::<super::simd::Neon, MR>(a, rows) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => unsafe { rows_generic::<super::simd::Wasm, MR>(a, rows) },
        _ => unsafe { rows_generic::<Portable, MR>(a, rows) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(a: &ConvArgs, rows: std::ops::Range<usize>) {
    for oy in rows {
        unsafe { conv_row::<super::simd::Avx2, MR>(a, oy) }
    }
}

#[allow(dead_code)]
unsafe fn rows_generic<S: Simd, const M: usize>(a: &ConvArgs, rows: std::ops::Range<usize>) {
    for oy in rows {
        unsafe { conv_row::<S, M>(a, oy) }
    }
}

/// The input index along one axis that output `o` reads through kernel tap `k`, if any.
#[inline(always)]
fn source(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    n: usize,
    t: bool,
) -> Option<usize> {
    let i = if t {
        // Transposed: o = i * stride + k * dil - pad.
        let v = (o + pad).checked_sub(k * dil)?;
        if v % stride != 0 {
            return None;
        }
        v / stride
    } else {
        (o * stride + k * dil).checked_sub(pad)?
    };
    (i < n).then_some(i)
}

#[inline(always)]
unsafe fn conv_row<S: Simd, const M: usize>(a: &ConvArgs, oy: usize) {
    let p = a.p;
    let g = &p.geom;
    let [kh, kw] = g.kernel;
    let t = g.transposed;
    let mut rows = [None; MAX_K];
    for (ky, r) in rows.iter_mut().enumerate().take(kh) {
        *r = source(oy, ky, g.stride[0], g.pad[0], g.dilation[0], a.ih, t);
    }
    // A transposed convolution's output columns of one phase share which taps they use.
    let step = if t { g.stride[1] } else { 1 };
    let mut ptrs = [[a.zero; M]; MAX_TAPS];
    let mut taps = [0usize; MAX_TAPS];
    for phase in 0..step.min(a.ow) {
        let mut ox0 = phase;
        while ox0 < a.ow {
            let count = M.min((a.ow - ox0).div_ceil(step));
            let mut n = 0;
            // A full block whose every tap lies inside the row: pointers by arithmetic alone
            // (most blocks; the checked path below is for the borders).
            let (sx, dx, px0) = (g.stride[1], g.dilation[1], g.pad[1]);
            let inside = !t
                && count == M
                && ox0 * sx >= px0
                && (ox0 + (M - 1)) * sx + (kw - 1) * dx < a.iw + px0;
            if inside {
                for (ky, row) in rows.iter().enumerate().take(kh) {
                    let Some(iy) = *row else { continue };
                    let base = unsafe { a.input.add((iy * a.iw + ox0 * sx - px0) * p.cin) };
                    for kx in 0..kw {
                        let first = unsafe { base.add(kx * dx * p.cin) };
                        ptrs[n] = std::array::from_fn(|j| unsafe { first.add(j * sx * p.cin) });
                        taps[n] = ky * kw + kx;
                        n += 1;
                    }
                }
            }
            for (ky, row) in rows.iter().enumerate().take(kh).filter(|_| !inside) {
                let Some(iy) = *row else { continue };
                for kx in 0..kw {
                    let mut any = false;
                    let mut px = [a.zero; M];
                    // Input column of the block's first pixel, and the step between its
                    // pixels' columns: one division per tap, not per pixel.
                    let (ix0, di) = if t {
                        let v = (ox0 + px0) as isize - (kx * dx) as isize;
                        if v.rem_euclid(sx as isize) != 0 {
                            continue;
                        }
                        (v.div_euclid(sx as isize), 1)
                    } else {
                        ((ox0 * sx + kx * dx) as isize - px0 as isize, sx as isize)
                    };
                    for (j, ptr) in px.iter_mut().enumerate().take(count) {
                        let ix = ix0 + j as isize * di;
                        if (0..a.iw as isize).contains(&ix) {
                            *ptr = unsafe { a.input.add((iy * a.iw + ix as usize) * p.cin) };
                            any = true;
                        }
                    }
                    if any {
                        ptrs[n] = px;
                        taps[n] = ky * kw + kx;
                        n += 1;
                    }
                }
            }
            for ch in 0..p.chunks {
                unsafe {
                    block::<S, M>(a, ch, &ptrs[..n], &taps[..n], oy * a.ow + ox0, step, count)
                };
            }
            ox0 += M * step;
        }
    }
}

/// `count` output pixels (`pix0`, `pix0 + step`, ...) by one chunk of output channels.
#[inline(always)]
unsafe fn block<S: Simd, const M: usize>(
    a: &ConvArgs,
    ch: usize,
    ptrs: &[[*const f32; M]],
    taps: &[usize],
    pix0: usize,
    step: usize,
    count: usize,
) {
    let p = a.p;
    let l = S::LANES;
    let chunk = p.chunk;
    let co0 = ch * chunk;
    unsafe {
        let b0 = S::load(p.bias.as_ptr().add(co0));
        let b1 = S::load(p.bias.as_ptr().add(co0 + l));
        let mut acc = [[b0, b1]; M];
        let cin = p.cin;
        for (row, &t) in ptrs.iter().zip(taps) {
            let w = p.weight.as_ptr().add((ch * p.taps + t) * cin * chunk);
            for ci in 0..cin {
                let w0 = S::load(w.add(ci * chunk));
                let w1 = S::load(w.add(ci * chunk + l));
                for j in 0..M {
                    let x = S::broadcast(row[j].add(ci));
                    acc[j][0] = S::madd(x, w0, acc[j][0]);
                    acc[j][1] = S::madd(x, w1, acc[j][1]);
                }
            }
        }
        // The common case without a branch per vector: a whole chunk of channels, every
        // pixel, no residual.
        if count == M && co0 + chunk <= p.cout && a.res.is_null() {
            let s0 = S::load(p.slope.as_ptr().add(co0));
            let s1 = S::load(p.slope.as_ptr().add(co0 + l));
            for (j, lanes) in acc.iter().enumerate() {
                let o = a.out.add((pix0 + j * step) * a.ostride + a.ooff + co0);
                S::store(o, S::prelu(lanes[0], s0));
                S::store(o.add(l), S::prelu(lanes[1], s1));
            }
            return;
        }
        for (j, lanes) in acc.iter().enumerate().take(count) {
            let pix = pix0 + j * step;
            for (v, &value) in lanes.iter().enumerate() {
                let co = co0 + v * l;
                if co >= p.cout {
                    break;
                }
                let mut x = S::prelu(value, S::load(p.slope.as_ptr().add(co)));
                if !a.res.is_null() {
                    let r = a.res.add(pix * a.res_c + co);
                    if co + l <= a.res_c {
                        x = S::add(x, S::load(r));
                    } else if co < a.res_c {
                        let mut tmp = [0.0f32; 8];
                        std::ptr::copy_nonoverlapping(r, tmp.as_mut_ptr(), a.res_c - co);
                        x = S::add(x, S::load(tmp.as_ptr()));
                    }
                    x = S::prelu(x, S::load(p.post.as_ptr().add(co)));
                }
                let o = a.out.add(pix * a.ostride + a.ooff + co);
                if co + l <= p.cout {
                    S::store(o, x);
                } else {
                    let mut tmp = [0.0f32; 8];
                    S::store(tmp.as_mut_ptr(), x);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), o, p.cout - co);
                }
            }
        }
    }
}
