// Class map: index of the largest logit per pixel, the first on ties (as torch.argmax).

struct ArgmaxParams {
    channels: u32, h: u32, w: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ArgmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read_write> classes: array<u32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.w || gid.y >= p.h) {
        return;
    }
    let hw = p.h * p.w;
    let pixel = gid.y * p.w + gid.x;
    var best = 0u;
    var best_v = f32(logits[at(0u, pixel, hw)]);
    for (var c = 1u; c < p.channels; c++) {
        let v = f32(logits[at(c, pixel, hw)]);
        if (v > best_v) {
            best = c;
            best_v = v;
        }
    }
    classes[pixel] = best;
}
