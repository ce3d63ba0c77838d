// Direct convolution with any kernel size, stride, padding and dilation: ENet's 3x3,
// dilated 3x3, asymmetric 5x1 / 1x5 and 2x2 stride 2 projections. Prefixed by
// conv_common.wgsl; 16 output channels per invocation.

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
    for (var ci = 0u; ci < p.in_c; ci++) {
        for (var ky = 0u; ky < p.k_h; ky++) {
            let iy = i32(oy * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
            if (iy < 0 || iy >= i32(p.in_h)) {
                continue;
            }
            let row = u32(iy) * p.in_w;
            let wrow = p.w_off + ((g0 * p.in_c + ci) * p.k_h + ky) * p.k_w;
            for (var kx = 0u; kx < p.k_w; kx++) {
                let ix = i32(ox * p.stride_w + kx * p.dil_w) - i32(p.pad_w);
                if (ix < 0 || ix >= i32(p.in_w)) {
                    continue;
                }
                let v = f32(input[at(ci, row + u32(ix), plane)]);
                let wi = wrow + kx;
                a0 += v * vec4<f32>(weights[wi]);
                a1 += v * vec4<f32>(weights[wi + gstride]);
                a2 += v * vec4<f32>(weights[wi + 2u * gstride]);
                a3 += v * vec4<f32>(weights[wi + 3u * gstride]);
            }
        }
    }
    _ = store_all(a0, a1, a2, a3, g0, oy * p.out_w + ox);
}
