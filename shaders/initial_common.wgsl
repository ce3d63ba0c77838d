// Shared by initial_block.wgsl and frame_initial.wgsl, which declare `aux`, `output` and a
// parameter block `p` with out_h, out_w and aux_off: the initial block's epilogue. The 13
// convolution channels (accumulated with their bias) and the 3-channel max `m` of the pool
// window get their folded BatchNorm and PReLU and are stored at `pixel`, pooled channels
// after the convolution's: 16 channels, four whole groups of 4 (layout.wgsl), each one store.
//
// aux, in vec4 units from aux_off: bias[4], slope[4] (conv channels 0..12, padded to 16),
// then pool scale, pool shift, pool slope (3 channels each, padded to 4).

const IN_C: u32 = 3u;
const CONV_C: u32 = 13u;

fn store_initial(acc: array<vec4<f32>, 4>, m: vec4<f32>, pixel: u32) {
    let hw = p.out_h * p.out_w;
    var v: array<vec4<f32>, 4>;
    for (var g = 0u; g < 4u; g++) {
        v[g] = prelu4(acc[g], aux[p.aux_off + 4u + g]);
    }
    let pooled = prelu4(m * aux[p.aux_off + 8u] + aux[p.aux_off + 9u], aux[p.aux_off + 10u]);
    // Channel 12 (CONV_C - 1), the convolution's last, then the IN_C pooled ones.
    v[3] = vec4<f32>(v[3].x, pooled.xyz);
    for (var g = 0u; g < 4u; g++) {
        output[g * hw + pixel] = act4(v[g]);
    }
}
