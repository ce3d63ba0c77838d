// ENet's initial block: 13 channels of 3x3 stride 2 convolution of the RGB input,
// concatenated with a max-pool of the 3 input channels, BatchNorm folded in (into the conv
// weights, and as scale/shift for the pooled channels), then PReLU. One invocation computes
// all 16 channels of one output pixel.
//
// aux, in vec4 units from aux_off: bias[4], slope[4] (conv channels 0..12, padded to 16),
// then pool scale, pool shift, pool slope (3 channels each, padded to 4).

struct InitialParams {
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    stride: u32, pad: u32, pool_k: u32, pool_pad: u32,
    w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
}

const IN_C: u32 = 3u;
const CONV_C: u32 = 13u;

@group(0) @binding(0) var<uniform> p: InitialParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> input: array<act>;
@group(0) @binding(4) var<storage, read_write> output: array<act>;

fn prelu4(v: vec4<f32>, slope: vec4<f32>) -> vec4<f32> {
    return select(v * slope, v, v >= vec4<f32>(0.0));
}

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    let plane = p.in_h * p.in_w;
    var acc: array<vec4<f32>, 4>;
    for (var g = 0u; g < 4u; g++) {
        acc[g] = aux[p.aux_off + g];
    }
    for (var ci = 0u; ci < IN_C; ci++) {
        for (var ky = 0u; ky < 3u; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.in_h)) {
                continue;
            }
            for (var kx = 0u; kx < 3u; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if (ix < 0 || ix >= i32(p.in_w)) {
                    continue;
                }
                let v = f32(input[ci * plane + u32(iy) * p.in_w + u32(ix)]);
                for (var g = 0u; g < 4u; g++) {
                    acc[g] += v * vec4<f32>(weights[p.w_off + ((g * IN_C + ci) * 3u + ky) * 3u + kx]);
                }
            }
        }
    }
    let hw = p.out_h * p.out_w;
    let pixel = oy * p.out_w + ox;
    for (var g = 0u; g < 4u; g++) {
        let v = prelu4(acc[g], aux[p.aux_off + 4u + g]);
        for (var j = 0u; j < 4u; j++) {
            let co = g * 4u + j;
            if (co < CONV_C) {
                output[co * hw + pixel] = act(v[j]);
            }
        }
    }
    // Max-pool branch; out-of-image taps are ignored, like PyTorch's -inf padding.
    var m = vec4<f32>(-3.4e38);
    for (var ky = 0u; ky < p.pool_k; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pool_pad);
        if (iy < 0 || iy >= i32(p.in_h)) {
            continue;
        }
        for (var kx = 0u; kx < p.pool_k; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pool_pad);
            if (ix < 0 || ix >= i32(p.in_w)) {
                continue;
            }
            let i = u32(iy) * p.in_w + u32(ix);
            m = max(m, vec4<f32>(f32(input[i]), f32(input[plane + i]), f32(input[2u * plane + i]), 0.0));
        }
    }
    let pooled = prelu4(m * aux[p.aux_off + 8u] + aux[p.aux_off + 9u], aux[p.aux_off + 10u]);
    for (var j = 0u; j < IN_C; j++) {
        output[(CONV_C + j) * hw + pixel] = act(pooled[j]);
    }
}
