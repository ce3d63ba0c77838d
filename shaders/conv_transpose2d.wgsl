// Transposed convolution in gather form: output (oy, ox) collects every input (iy, ix)
// with oy = iy * stride - pad + ky * dilation. Covers ENet's 2x2 stride 2 and
// 3x3 stride 2 pad 1 (output padding 1) upsamplings. Prefixed by conv_common.wgsl.

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let g = gid.z;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    var acc = aux[p.aux_off + g];
    let plane = p.in_h * p.in_w;
    let sh = i32(p.stride_h);
    let sw = i32(p.stride_w);
    for (var ci = 0u; ci < p.in_c; ci++) {
        for (var ky = 0u; ky < p.k_h; ky++) {
            let ty = i32(oy) + i32(p.pad_h) - i32(ky * p.dil_h);
            if (ty < 0 || ty % sh != 0 || ty / sh >= i32(p.in_h)) {
                continue;
            }
            let row = ci * plane + u32(ty / sh) * p.in_w;
            let wrow = p.w_off + ((g * p.in_c + ci) * p.k_h + ky) * p.k_w;
            for (var kx = 0u; kx < p.k_w; kx++) {
                let tx = i32(ox) + i32(p.pad_w) - i32(kx * p.dil_w);
                if (tx < 0 || tx % sw != 0 || tx / sw >= i32(p.in_w)) {
                    continue;
                }
                acc += input[row + u32(tx / sw)] * weights[wrow + kx];
            }
        }
    }
    store_group(acc, g, oy * p.out_w + ox);
}
