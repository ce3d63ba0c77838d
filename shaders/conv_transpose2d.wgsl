// Transposed convolution in gather form: output (oy, ox) collects every input (iy, ix)
// with oy = iy * stride - pad + ky. Only the taps with ky = (oy + pad) mod stride (and every
// stride-th after) can land on an input pixel, so the loops visit just those. Covers ENet's
// 2x2 stride 2 and 3x3 stride 2 pad 1 (output padding 1) upsamplings; dilation must be 1.
// Prefixed by conv_common.wgsl; 16 output channels per invocation. `with_argmax` is the
// network's last layer with the class map folded in: one invocation holds all of a pixel's
// logits (at most 16 classes), so it also writes the index of the largest, the first on ties
// (as argmax.wgsl and torch.argmax), compared as stored.

@group(0) @binding(6) var<storage, read_write> classes: array<u32>;

// The 16 channels from g0 at output (ox, oy), stored; returned as stored.
fn transposed(ox: u32, oy: u32, g0: u32) -> array<vec4<f32>, 4> {
    var a0 = group_bias(g0, 0u);
    var a1 = group_bias(g0, 1u);
    var a2 = group_bias(g0, 2u);
    var a3 = group_bias(g0, 3u);
    let plane = p.in_h * p.in_w;
    let gstride = p.in_c * p.k_h * p.k_w;
    let ty0 = oy + p.pad_h;
    let tx0 = ox + p.pad_w;
    for (var ky = ty0 % p.stride_h; ky < p.k_h; ky += p.stride_h) {
        if (ky > ty0) {
            break;
        }
        let iy = (ty0 - ky) / p.stride_h;
        if (iy >= p.in_h) {
            continue;
        }
        for (var kx = tx0 % p.stride_w; kx < p.k_w; kx += p.stride_w) {
            if (kx > tx0) {
                break;
            }
            let ix = (tx0 - kx) / p.stride_w;
            if (ix >= p.in_w) {
                continue;
            }
            let src = iy * p.in_w + ix;
            let wk = p.w_off + ky * p.k_w + kx;
            for (var ci = 0u; ci < p.in_c; ci++) {
                let v = f32(input[at(ci, src, plane)]);
                let wi = wk + (g0 * p.in_c + ci) * p.k_h * p.k_w;
                a0 += v * vec4<f32>(weights[wi]);
                a1 += v * vec4<f32>(weights[wi + gstride]);
                a2 += v * vec4<f32>(weights[wi + 2u * gstride]);
                a3 += v * vec4<f32>(weights[wi + 3u * gstride]);
            }
        }
    }
    return store_all(a0, a1, a2, a3, g0, oy * p.out_w + ox);
}

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.out_w || gid.y >= p.out_h) {
        return;
    }
    _ = transposed(gid.x, gid.y, gid.z * 4u);
}

@compute @workgroup_size(16, 4, 1)
fn with_argmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.out_w || gid.y >= p.out_h) {
        return;
    }
    var logits = transposed(gid.x, gid.y, 0u);
    var best = 0u;
    var best_v = logits[0].x;
    for (var c = 1u; c < p.out_c; c++) {
        let v = logits[c / 4u][c % 4u];
        if (v > best_v) {
            best = c;
            best_v = v;
        }
    }
    classes[gid.y * p.out_w + gid.x] = best;
}
