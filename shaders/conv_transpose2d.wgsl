// Transposed convolution in gather form: output (oy, ox) collects every input (iy, ix)
// with oy = iy * stride - pad + ky. Only the taps with ky = (oy + pad) mod stride (and every
// stride-th after) can land on an input pixel, so the loops visit just those. Covers ENet's
// 2x2 stride 2 and 3x3 stride 2 pad 1 (output padding 1) upsamplings; dilation must be 1.
// Prefixed by conv_common.wgsl; 16 output channels per invocation.

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let g0 = gid.z * 4u;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
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
                let v = f32(input[ci * plane + src]);
                let wi = wk + (g0 * p.in_c + ci) * p.k_h * p.k_w;
                a0 += v * vec4<f32>(weights[wi]);
                a1 += v * vec4<f32>(weights[wi + gstride]);
                a2 += v * vec4<f32>(weights[wi + 2u * gstride]);
                a3 += v * vec4<f32>(weights[wi + 3u * gstride]);
            }
        }
    }
    store_all(a0, a1, a2, a3, g0, oy * p.out_w + ox);
}
