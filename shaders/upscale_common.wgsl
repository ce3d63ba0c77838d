// The class of one output pixel from class probabilities at the network's size: how a class
// map is brought to the size it is shown or saved at. Shared by the compute kernel
// (upscale.wgsl: the CLI, tests, the page's "which class is here") and the overlay's
// fragment shader (the page draws it at the canvas's own resolution).
//
// The includer declares `probs` (planar f32: probs[c * net_w * net_h + pixel]) and `guide`
// (the frame at its own size, `src_w` x `src_h`). Modes (an output no larger than the network
// on both sides is always nearest: there is nothing to bring up):
// - 0 nearest: the network pixel nearest the output pixel's centre (the overlay's integer
//   rule), its most probable class.
// - 1 bilinear: the probabilities of the 2 x 2 nearest network pixels blended by distance.
// - 2 edge: joint bilateral upsampling (Kopf et al. 2007), guided by the frame: the
//   EDGE_TAPS x EDGE_TAPS nearest network pixels weighted by distance (a Gaussian, `inv_space` = 1 / 2 sigma^2 in
//   network pixels) times colour likeness between the output pixel and each network pixel's
//   centre in the frame (`inv_range` = 1 / 2 sigma^2 over RGB in 0..1), so a class boundary
//   follows the frame's own edges between network pixels.

struct Upscale {
    net_w: u32, net_h: u32, src_w: u32, src_h: u32,
    out_w: u32, out_h: u32, channels: u32, mode: u32,
    inv_space: f32, inv_range: f32,
}

const UPSCALE_NEAREST: u32 = 0u;
const UPSCALE_BILINEAR: u32 = 1u;
const UPSCALE_EDGE: u32 = 2u;
// The edge mode's window, network pixels a side (kernels::upscale::EDGE_TAPS).
const EDGE_TAPS: i32 = 4;

// The pixel of an m-pixel side nearest the centre of pixel i of an n-pixel side.
fn upscale_nearest(i: u32, n: u32, m: u32) -> u32 {
    return min((2u * i + 1u) * m / (2u * n), m - 1u);
}

fn upscale_guide(u: Upscale, x: u32, y: u32, n_w: u32, n_h: u32) -> vec3<f32> {
    let at = vec2<u32>(upscale_nearest(x, n_w, u.src_w), upscale_nearest(y, n_h, u.src_h));
    return textureLoad(guide, at, 0).rgb;
}

fn upscale_class(u: Upscale, x: u32, y: u32) -> u32 {
    let hw = u.net_w * u.net_h;
    var idx: array<u32, 16>;
    var wt: array<f32, 16>;
    var taps = 0u;
    // An output no larger than the network takes its classes as they are.
    if (u.mode == UPSCALE_NEAREST || (u.out_w <= u.net_w && u.out_h <= u.net_h)) {
        idx[0] = upscale_nearest(y, u.out_h, u.net_h) * u.net_w + upscale_nearest(x, u.out_w, u.net_w);
        wt[0] = 1.0;
        taps = 1u;
    } else {
        // The output pixel's centre on the network's grid.
        let fx = (f32(x) + 0.5) * f32(u.net_w) / f32(u.out_w) - 0.5;
        let fy = (f32(y) + 0.5) * f32(u.net_h) / f32(u.out_h) - 0.5;
        var n = 2;
        var first = 0;
        var g0 = vec3<f32>(0.0);
        if (u.mode == UPSCALE_EDGE) {
            n = EDGE_TAPS;
            first = 1 - EDGE_TAPS / 2;
            g0 = upscale_guide(u, x, y, u.out_w, u.out_h);
        }
        let x0 = i32(floor(fx)) + first;
        let y0 = i32(floor(fy)) + first;
        for (var j = 0; j < n; j++) {
            let ty = y0 + j;
            let cy = u32(clamp(ty, 0, i32(u.net_h) - 1));
            let dy = fy - f32(ty);
            for (var i = 0; i < n; i++) {
                let tx = x0 + i;
                let cx = u32(clamp(tx, 0, i32(u.net_w) - 1));
                let dx = fx - f32(tx);
                var w: f32;
                if (u.mode == UPSCALE_EDGE) {
                    let d = upscale_guide(u, cx, cy, u.net_w, u.net_h) - g0;
                    // Bounded so that a pixel unlike all its taps still weighs them by distance.
                    w = exp(-min((dx * dx + dy * dy) * u.inv_space + dot(d, d) * u.inv_range, 30.0));
                } else {
                    w = max(1.0 - abs(dx), 0.0) * max(1.0 - abs(dy), 0.0);
                }
                idx[taps] = cy * u.net_w + cx;
                wt[taps] = w;
                taps++;
            }
        }
    }
    var best = 0u;
    var best_v = -1.0;
    for (var c = 0u; c < u.channels; c++) {
        var s = 0.0;
        for (var k = 0u; k < taps; k++) {
            s += wt[k] * probs[c * hw + idx[k]];
        }
        if (s > best_v) {
            best_v = s;
            best = c;
        }
    }
    return best;
}
