// Temporal smoothing of the class map. Per pixel: the softmax of this frame's logits is
// blended with the previous frame's probabilities, keeping `strength * u` of the old ones,
// where u = (1 - (p1 - p2))^2 is this frame's own uncertainty (p1, p2 its two largest
// probabilities; squared, so that only pixels close to a tie are held back much). A confident pixel follows the new frame at once; a pixel torn between two
// classes, where camera noise makes the plain argmax flicker, is damped. The blend is kept
// for the next frame and its argmax is the smoothed class map. Runs after the argmax kernel,
// whose class map (the frame's own) it reads.

struct SmoothParams {
    channels: u32, h: u32, w: u32,
    // 1: forget the previous probabilities (first frame, new size, smoothing switched on).
    reset: u32,
    strength: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: SmoothParams;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read> raw_classes: array<u32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> classes: array<u32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.w || gid.y >= p.h) {
        return;
    }
    let hw = p.h * p.w;
    let pixel = gid.y * p.w + gid.x;
    let top = f32(logits[at(raw_classes[pixel], pixel, hw)]);
    var sum = 0.0;
    var e1 = 0.0;
    var e2 = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let e = exp(f32(logits[at(c, pixel, hw)]) - top);
        sum += e;
        if (e > e1) {
            e2 = e1;
            e1 = e;
        } else if (e > e2) {
            e2 = e;
        }
    }
    let margin = 1.0 - (e1 - e2) / sum;
    let uncertainty = margin * margin;
    let keep = select(clamp(p.strength, 0.0, 1.0) * uncertainty, 0.0, p.reset == 1u);
    var best = 0u;
    var best_v = -1.0;
    for (var c = 0u; c < p.channels; c++) {
        // The blend is kept planar: probs[c][pixel].
        let i = c * hw + pixel;
        let q = exp(f32(logits[at(c, pixel, hw)]) - top) / sum;
        let b = mix(q, probs[i], keep);
        probs[i] = b;
        if (b > best_v) {
            best_v = b;
            best = c;
        }
    }
    classes[pixel] = best;
}
