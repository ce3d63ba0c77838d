//! `overlay.wgsl`'s host-side description and twin: which class-map pixel a screen pixel
//! shows, in which view, in which colour. Its pipeline lives in `runtime/overlay.rs` (a render
//! pass, not a compute kernel).

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
