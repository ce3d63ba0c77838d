// ENet's initial block read straight from the frame: the preprocessing (bilinear resize with
// half-pixel centres, /255, normalisation, as preprocess.wgsl) folded into the block
// (13 channels of 3x3 stride 2 padding 1 convolution, the max-pool of the 3 input channels,
// folded BatchNorm, PReLU, as initial_block.wgsl), so the network input never goes to memory.
//
// A workgroup owns 16x16 output pixels, one invocation each. It first resizes and normalises
// the 33x33 input pixels their windows read into workgroup memory (each once, though up to
// four windows overlap it), rounded to the storage precision as the separate preprocessing
// stores them (resize_common.wgsl, shared with preprocess.wgsl); then each invocation computes its pixel from there. The pool window (2x2, or
// 3x3 with padding 1, stride 2) lies inside the convolution's. The epilogue is
// initial_common.wgsl's, shared with initial_block.wgsl.

struct FrameInitialParams {
    src_w: u32, src_h: u32, in_w: u32, in_h: u32,
    out_w: u32, out_h: u32, pool_k: u32, pool_pad: u32,
    w_off: u32, aux_off: u32, _pad0: u32, _pad1: u32,
    mean: vec4<f32>,
    stddev: vec4<f32>,
}

const T: u32 = 16u;
// Input pixels per side of a tile's windows: 2 * T + 1.
const S: u32 = 33u;

@group(0) @binding(0) var<uniform> p: FrameInitialParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(3) var source: texture_2d<f32>;
// 16 channels: four groups of 4 (layout.wgsl).
@group(0) @binding(4) var<storage, read_write> output: array<act4>;

// 12.8 KiB: [channel][row][column] of the network input, zero outside it (the convolution's
// padding).
var<workgroup> staged: array<f32, 3267>;

// The network input at (x, y), as preprocess.wgsl computes and stores it.
fn preprocessed(x: u32, y: u32) -> vec3<f32> {
    let v = normalised(x, y, p.in_w, p.in_h);
    return vec3<f32>(f32(act(v.r)), f32(act(v.g)), f32(act(v.b)));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    // The tile's first input row and column: 2 * first output - padding.
    let bx = i32(wid.x * T * 2u) - 1;
    let by = i32(wid.y * T * 2u) - 1;
    for (var item = li; item < S * S; item += T * T) {
        let ix = bx + i32(item % S);
        let iy = by + i32(item / S);
        var v = vec3<f32>(0.0);
        if (ix >= 0 && ix < i32(p.in_w) && iy >= 0 && iy < i32(p.in_h)) {
            v = preprocessed(u32(ix), u32(iy));
        }
        staged[item] = v.r;
        staged[S * S + item] = v.g;
        staged[2u * S * S + item] = v.b;
    }
    workgroupBarrier();

    let ox = wid.x * T + lid.x;
    let oy = wid.y * T + lid.y;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    for (var g = 0u; g < 4u; g++) {
        acc[g] = aux[p.aux_off + g];
    }
    for (var ci = 0u; ci < IN_C; ci++) {
        for (var ky = 0u; ky < 3u; ky++) {
            for (var kx = 0u; kx < 3u; kx++) {
                // Outside the picture the tile holds zeros: the same sum as skipping the tap.
                let v = staged[ci * S * S + (2u * lid.y + ky) * S + 2u * lid.x + kx];
                for (var g = 0u; g < 4u; g++) {
                    acc[g] += v * vec4<f32>(weights[p.w_off + ((g * IN_C + ci) * 3u + ky) * 3u + kx]);
                }
            }
        }
    }
    // Max-pool branch; out-of-image taps are ignored, like PyTorch's -inf padding.
    var m = vec4<f32>(-3.4e38);
    for (var ky = 0u; ky < p.pool_k; ky++) {
        let iy = i32(oy * 2u + ky) - i32(p.pool_pad);
        if (iy < 0 || iy >= i32(p.in_h)) {
            continue;
        }
        for (var kx = 0u; kx < p.pool_k; kx++) {
            let ix = i32(ox * 2u + kx) - i32(p.pool_pad);
            if (ix < 0 || ix >= i32(p.in_w)) {
                continue;
            }
            let i = u32(iy - by) * S + u32(ix - bx);
            m = max(m, vec4<f32>(staged[i], staged[S * S + i], staged[2u * S * S + i], 0.0));
        }
    }
    store_initial(acc, m, oy * p.out_w + ox);
}
