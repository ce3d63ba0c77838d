// Refines the class probabilities at the network's size along the frame's own edges before
// they are brought to the output's size: mean-field inference of a Potts CRF in a window
// (Krähenbühl and Koltun 2011, with the fully connected kernel cut to a window of taps). Each
// iteration, each pixel's log-probabilities (the unary, the smoothed probabilities) gain
// `weight` times its neighbours' current probabilities, weighted by a Gaussian of distance
// (`inv_space` = 1 / 2 sigma^2, network pixels) times one of colour likeness in the frame
// (`inv_range`, RGB in 0..1), then are normalised. A pixel the network is unsure of takes
// the class of the like-coloured pixels around it, so class boundaries move to the picture's
// own edges and small noisy islands fill in.
//
// One entry point, three kinds of dispatch by `stage`:
// - 1, colours: each network pixel's colour, the frame averaged over the pixel's footprint
//   (at most GUIDE_SAMPLES a side), into `colours`;
// - 0, one iteration: `q_in` -> `q_out` (the first reads `unary` as `q_in`);
// - 2, hold: the refined probabilities `q_in` blended into the ones kept from the last frame,
//   `q_out`, which are what is drawn.
//
// Over a live camera both the colours and the result are held from frame to frame (`keep`,
// the smoothing's strength; 0 for a single picture): camera noise in the guide changes the
// neighbours' weights a little each frame, and the iterations turn that into boundary pixels
// flipping class, more than the smoothed probabilities alone would. A colour is held less
// the more it changed (`inv_change`), so that motion is followed at once; the result is held
// by its own uncertainty, as the smoothing holds the network's.

struct RefineParams {
    net_w: u32, net_h: u32, src_w: u32, src_h: u32,
    // The window: taps `step` network pixels apart, out to `radius` (at most MAX_TAPS).
    channels: u32, stage: u32, radius: u32, step: u32,
    inv_space: f32, inv_range: f32, weight: f32, keep: f32,
    // `reset` 1: keep nothing from the last frame (first frame, new size, switched on).
    inv_change: f32, reset: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: RefineParams;
@group(0) @binding(1) var frame: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> colours: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> unary: array<f32>;
@group(0) @binding(4) var<storage, read> q_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> q_out: array<f32>;

// Most taps a window holds (kernels::refine::MAX_TAPS).
const MAX_TAPS: u32 = 121u;
// Most source pixels a footprint's side is sampled at (kernels::refine::GUIDE_SAMPLES).
const GUIDE_SAMPLES: u32 = 8u;
// The smallest probability taken to the log: a class the network rules out stays nearly out.
const FLOOR: f32 = 1e-6;

// Source pixels [first, end) under network pixel i of an n-pixel side over m source pixels.
fn footprint(i: u32, n: u32, m: u32) -> vec2<u32> {
    let first = i * m / n;
    return vec2<u32>(first, max((i + 1u) * m / n, first + 1u));
}

fn guide_colour(x: u32, y: u32) -> vec4<f32> {
    let fx = footprint(x, p.net_w, p.src_w);
    let fy = footprint(y, p.net_h, p.src_h);
    let sx = (fx.y - fx.x + GUIDE_SAMPLES - 1u) / GUIDE_SAMPLES;
    let sy = (fy.y - fy.x + GUIDE_SAMPLES - 1u) / GUIDE_SAMPLES;
    var sum = vec3<f32>(0.0);
    var n = 0.0;
    for (var v = fy.x; v < fy.y; v += sy) {
        for (var u = fx.x; u < fx.y; u += sx) {
            sum += textureLoad(frame, vec2<u32>(u, v), 0).rgb;
            n += 1.0;
        }
    }
    return vec4<f32>(sum / n, 0.0);
}

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.net_w || gid.y >= p.net_h) {
        return;
    }
    let pixel = gid.y * p.net_w + gid.x;
    let hw = p.net_w * p.net_h;
    if (p.stage == 1u) {
        let fresh = guide_colour(gid.x, gid.y);
        let old = colours[pixel];
        let d = fresh.rgb - old.rgb;
        let keep = p.keep * exp(-min(dot(d, d) * p.inv_change, 30.0));
        colours[pixel] = select(mix(fresh, old, keep), fresh, p.reset == 1u);
        return;
    }
    if (p.stage == 2u) {
        // The margin between the two likeliest classes, as the smoothing measures it.
        var e1 = 0.0;
        var e2 = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let e = q_in[c * hw + pixel];
            if (e > e1) {
                e2 = e1;
                e1 = e;
            } else if (e > e2) {
                e2 = e;
            }
        }
        let margin = 1.0 - (e1 - e2);
        let keep = p.keep * margin * margin;
        for (var c = 0u; c < p.channels; c++) {
            let i = c * hw + pixel;
            q_out[i] = select(mix(q_in[i], q_out[i], keep), q_in[i], p.reset == 1u);
        }
        return;
    }
    let g0 = colours[pixel].rgb;
    // The taps' weights, in the order the class loop walks them (0 off the frame).
    var wt: array<f32, MAX_TAPS>;
    let r = i32(p.radius);
    let step = i32(p.step);
    var t = 0u;
    for (var dy = -r; dy <= r; dy += step) {
        for (var dx = -r; dx <= r; dx += step) {
            let x = i32(gid.x) + dx;
            let y = i32(gid.y) + dy;
            var w = 0.0;
            if ((dx != 0 || dy != 0) && x >= 0 && y >= 0 && x < i32(p.net_w) && y < i32(p.net_h)) {
                let d = colours[u32(y) * p.net_w + u32(x)].rgb - g0;
                w = p.weight * exp(-min(f32(dx * dx + dy * dy) * p.inv_space + dot(d, d) * p.inv_range, 30.0));
            }
            wt[min(t, MAX_TAPS - 1u)] = w;
            t++;
        }
    }
    // Each class's energy into q_out, then normalised there (a softmax).
    var top = -3.0e38;
    for (var c = 0u; c < p.channels; c++) {
        let plane = c * hw;
        var m = 0.0;
        t = 0u;
        for (var dy = -r; dy <= r; dy += step) {
            let y = clamp(i32(gid.y) + dy, 0, i32(p.net_h) - 1);
            for (var dx = -r; dx <= r; dx += step) {
                let x = clamp(i32(gid.x) + dx, 0, i32(p.net_w) - 1);
                m += wt[min(t, MAX_TAPS - 1u)] * q_in[plane + u32(y) * p.net_w + u32(x)];
                t++;
            }
        }
        let e = log(max(unary[plane + pixel], FLOOR)) + m;
        q_out[plane + pixel] = e;
        top = max(top, e);
    }
    var sum = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let e = exp(q_out[c * hw + pixel] - top);
        q_out[c * hw + pixel] = e;
        sum += e;
    }
    for (var c = 0u; c < p.channels; c++) {
        q_out[c * hw + pixel] /= sum;
    }
}
