// Pointwise (1x1, stride 1) convolution: ENet's projections and expansions, with the
// residual add of a bottleneck fused into the epilogue. Prefixed by conv_common.wgsl.

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let g = gid.z;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    let pixel = oy * p.out_w + ox;
    let plane = p.in_h * p.in_w;
    let wbase = p.w_off + g * p.in_c;
    var acc = aux[p.aux_off + g];
    for (var ci = 0u; ci < p.in_c; ci++) {
        acc += input[ci * plane + pixel] * weights[wbase + ci];
    }
    store_group(acc, g, pixel);
}
