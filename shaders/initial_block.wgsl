// ENet's initial block: 13 channels of 3x3 stride 2 convolution of the RGB input,
// concatenated with a max-pool of the 3 input channels, BatchNorm folded in (into the conv
// weights, and as scale/shift for the pooled channels), then PReLU. One invocation computes
// all 16 channels of one output pixel. Prefixed by initial_common.wgsl (the epilogue).

struct InitialParams {
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    stride: u32, pad: u32, pool_k: u32, pool_pad: u32,
    w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
}


@group(0) @binding(0) var<uniform> p: InitialParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> input: array<act>;
// 16 channels: four groups of 4 (layout.wgsl).
@group(0) @binding(4) var<storage, read_write> output: array<act4>;

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
                let v = f32(input[at(ci, u32(iy) * p.in_w + u32(ix), plane)]);
                for (var g = 0u; g < 4u; g++) {
                    acc[g] += v * vec4<f32>(weights[p.w_off + ((g * IN_C + ci) * 3u + ky) * 3u + kx]);
                }
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
            m = max(m, vec4<f32>(f32(input[at(0u, i, plane)]), f32(input[at(1u, i, plane)]), f32(input[at(2u, i, plane)]), 0.0));
        }
    }
    store_initial(acc, m, oy * p.out_w + ox);
}
