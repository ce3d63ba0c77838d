// Pointwise (1x1, stride 1) convolution: ENet's projections and expansions, with the
// residual add of a bottleneck fused into the epilogue. Prefixed by conv_common.wgsl;
// 16 output channels per invocation.

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let g0 = gid.z * 4u;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    let pixel = oy * p.out_w + ox;
    let plane = p.in_h * p.in_w;
    let wbase = p.w_off + g0 * p.in_c;
    let n = p.in_c;
    var a0 = group_bias(g0, 0u);
    var a1 = group_bias(g0, 1u);
    var a2 = group_bias(g0, 2u);
    var a3 = group_bias(g0, 3u);
    for (var ci = 0u; ci < n; ci++) {
        let v = f32(input[at(ci, pixel, plane)]);
        let wi = wbase + ci;
        a0 += v * vec4<f32>(weights[wi]);
        a1 += v * vec4<f32>(weights[wi + n]);
        a2 += v * vec4<f32>(weights[wi + 2u * n]);
        a3 += v * vec4<f32>(weights[wi + 3u * n]);
    }
    _ = store_all(a0, a1, a2, a3, g0, pixel);
}
