// Shared by initial_block.wgsl and frame_initial.wgsl, which declare `aux`, `output` and a
// parameter block `p` with out_h, out_w and aux_off: the initial block's epilogue. The 13
// convolution channels (accumulated with their bias) and the 3-channel max `m` of the pool
// window get their folded BatchNorm and PReLU and are stored at `pixel`, pooled channels
// after the convolution's.
//
// aux, in vec4 units from aux_off: bias[4], slope[4] (conv channels 0..12, padded to 16),
// then pool scale, pool shift, pool slope (3 channels each, padded to 4).

const IN_C: u32 = 3u;
const CONV_C: u32 = 13u;

fn prelu4(v: vec4<f32>, slope: vec4<f32>) -> vec4<f32> {
    return select(v * slope, v, v >= vec4<f32>(0.0));
}

fn store_initial(acc: array<vec4<f32>, 4>, m: vec4<f32>, pixel: u32) {
    let hw = p.out_h * p.out_w;
    for (var g = 0u; g < 4u; g++) {
        let v = prelu4(acc[g], aux[p.aux_off + 4u + g]);
        for (var j = 0u; j < 4u; j++) {
            let co = g * 4u + j;
            if (co < CONV_C) {
                output[co * hw + pixel] = act(v[j]);
            }
        }
    }
    let pooled = prelu4(m * aux[p.aux_off + 8u] + aux[p.aux_off + 9u], aux[p.aux_off + 10u]);
    for (var j = 0u; j < IN_C; j++) {
        output[(CONV_C + j) * hw + pixel] = act(pooled[j]);
    }
}
