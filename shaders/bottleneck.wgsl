// A whole ENet bottleneck in one dispatch: 1x1 projection -> main convolution (3x3, dilated
// or not, or 5x1 / 1x5) -> 1x1 expansion -> + residual -> PReLU, each with its folded
// BatchNorm bias and activation slope, as the separate convolutions compute them.
//
// A workgroup owns a tile of output pixels (TILE_W x TILE_H, 32 or 64 of them), STEP_W x
// STEP_H apart: contiguous, or a dilation apart for a large dilation, whose taps are then
// neighbours in the tile (tile-space dilation TD). Its THREADS invocations (256 on GPUs, 64
// on CPU emulations, which run them one after the other) work in three phases, a barrier
// between each:
//   1. the tile and its halo of the main convolution's input into workgroup memory, all
//      invocations sharing the pixels: PROJECT, the projection of `input` computed there (it never goes
//      to memory): 1x1, or PROJ_K x PROJ_K at stride PROJ_K (a downsampling block's, of its
//      input, which is also the pooled residual); otherwise `mid`, written by the dispatch
//      before (an asymmetric block's first convolution);
//   2. the main convolution, MID -> MID channels: each pixel's output groups of 4 split over
//      the lanes = THREADS / pixels invocations that share the pixel, reading the staged tile;
//      its outputs (PReLU'd) replace the tile in workgroup memory;
//   3. the expansion back to CH channels, its groups split over the lanes likewise, with the
//      residual (RES_C <= CH channels, zero-padded; POOL: the 2x2 max-pool of the `residual`
//      binding, a downsampling block's input, res_h x res_w, pooled here, its indices
//      written to `indices` for the decoder's unpooling) and the block's PReLU.
// Without EXPAND the main convolution's outputs are the output (an asymmetric block's
// projection and first convolution), written after phase 2. The shapes are pipeline
// constants, one pipeline per kind of block, so every loop has a constant trip count and
// unrolls. Weights and per-channel values are packed as for the conv kernels
// (conv_common.wgsl): vec4 over groups of 4 output channels; activations are read and
// written a pixel's group of 4 channels at a time (layout.wgsl).
//
// FIRST (an asymmetric block: two main convolutions, F_KH x F_KW then K_H x K_W, both "same"
// and of dilation 1): phase 1 stages the projection over the tile and both halos (P_W x
// P_H), and the first convolution's outputs over the tile and the second's halo then replace
// it, a barrier before and after, so neither intermediate goes to memory.

override THREADS: u32;
override CH: u32;
override MID: u32;
override RES_C: u32;
override K_H: u32;
override K_W: u32;
override DIL_H: u32;
override DIL_W: u32;
override TILE_W: u32;
override TILE_H: u32;
override STEP_W: u32;
override STEP_H: u32;
override TD_W: u32;
override TD_H: u32;
override HALO_W: u32;
override HALO_H: u32;
override PROJECT: bool;
override PROJ_CIN: u32;
override PROJ_K: u32;
override FIRST: bool;
override F_KH: u32;
override F_KW: u32;
override P_W: u32;
override P_H: u32;
override EXPAND: bool;
override POOL: bool;

struct BottleneckParams {
    h: u32, w: u32, pad_h: u32, pad_w: u32,
    proj_w: u32, proj_aux: u32, main_w: u32, main_aux: u32,
    exp_w: u32, exp_aux: u32, mid_groups: u32, exp_groups: u32,
    res_h: u32, res_w: u32, first_w: u32, first_aux: u32,
}

@group(0) @binding(0) var<uniform> p: BottleneckParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
// Activations by group of 4 channels: group g of pixel i (of n) at g * n + i.
@group(0) @binding(3) var<storage, read> input: array<act4>;
@group(0) @binding(4) var<storage, read> mid: array<act4>;
@group(0) @binding(5) var<storage, read> residual: array<act4>;
@group(0) @binding(6) var<storage, read_write> output: array<act4>;
@group(0) @binding(7) var<storage, read_write> indices: array<u32>;

// 16 KiB: WebGPU's default workgroup memory. Phase 1 lays it out [channel group][halo
// pixel], phase 2 [channel group][tile pixel].
var<workgroup> tile: array<vec4<f32>, 1024>;

// Which of group g's channels are real: those below `n`.
fn real(g: u32, n: u32) -> vec4<bool> {
    return vec4<u32>(g * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
}

// The 2x2 max of group `g` of the residual binding at output pixel (ox, oy), the indices
// (y * res_w + x) of its real channels written out: the first maximum in row-major order on
// ties, NaN propagating, as maxpool.wgsl and PyTorch.
fn pool(g: u32, ox: u32, oy: u32, pixel: u32) -> vec4<f32> {
    let base = g * p.res_h * p.res_w;
    let first = (oy * 2u) * p.res_w + ox * 2u;
    var best_i = vec4<u32>(first);
    var best = vec4<f32>(residual[base + first]);
    for (var t = 1u; t < 4u; t++) {
        let i = (oy * 2u + t / 2u) * p.res_w + ox * 2u + t % 2u;
        let v = vec4<f32>(residual[base + i]);
        let take = (v > best) | (v != v);
        best = select(best, v, take);
        best_i = select(best_i, vec4<u32>(i), take);
    }
    for (var j = 0u; j < 4u; j++) {
        let c = g * 4u + j;
        if (c < RES_C) {
            indices[c * p.h * p.w + pixel] = best_i[j];
        }
    }
    return best;
}

// An asymmetric block's first convolution, MID -> MID, from the staged projection (P_W x P_H)
// to its outputs over the main convolution's input region (HALO_W x HALO_H), which replace
// the projection in workgroup memory. Outside the picture its outputs are zeros: the main
// convolution's padding.
fn first_conv(x0: u32, y0: u32, lid: u32) {
    let mg = (MID + 3u) / 4u;
    let halo = HALO_W * HALO_H;
    let pp = P_W * P_H;
    let taps = F_KH * F_KW;
    // At most 1024 items over 64 or more invocations.
    var f: array<vec4<f32>, 16>;
    for (var k = 0u; k < (mg * halo + THREADS - 1u) / THREADS; k++) {
        let item = lid + k * THREADS;
        f[k] = vec4<f32>(0.0);
        if (item >= mg * halo) {
            break;
        }
        let go = item / halo;
        let r = (item % halo) / HALO_W;
        let c = (item % halo) % HALO_W;
        let iy = i32(y0 + r) - i32(p.pad_h);
        let ix = i32(x0 + c) - i32(p.pad_w);
        if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
            continue;
        }
        var acc = aux[p.first_aux + go];
        for (var cg = 0u; cg < mg; cg++) {
            for (var ky = 0u; ky < F_KH; ky++) {
                for (var kx = 0u; kx < F_KW; kx++) {
                    let v = tile[cg * pp + (r + ky) * P_W + c + kx];
                    let wi = p.first_w + ((go * MID + cg * 4u) * F_KH + ky) * F_KW + kx;
                    acc += taps4(v, wi, taps);
                }
            }
        }
        f[k] = prelu4(acc, aux[p.first_aux + p.mid_groups + go]);
    }
    workgroupBarrier();
    for (var k = 0u; k < (mg * halo + THREADS - 1u) / THREADS; k++) {
        let item = lid + k * THREADS;
        if (item < mg * halo) {
            tile[item] = f[k];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let plane = p.h * p.w;
    // The tile's first pixel: interleaved tile grids, one per residue of the step.
    let x0 = wid.x % STEP_W + (wid.x / STEP_W) * TILE_W * STEP_W;
    let y0 = wid.y % STEP_H + (wid.y / STEP_H) * TILE_H * STEP_H;
    let mg = (MID + 3u) / 4u;
    let halo = HALO_W * HALO_H;

    // Phase 1: the main convolution's input over the tile and its halo (FIRST: the first
    // convolution's input, over its halo too).
    let sw = select(HALO_W, P_W, FIRST);
    let staged = select(halo, P_W * P_H, FIRST);
    let off_h = i32(p.pad_h + select(0u, (F_KH - 1u) / 2u, FIRST));
    let off_w = i32(p.pad_w + select(0u, (F_KW - 1u) / 2u, FIRST));
    for (var item = lid; item < mg * staged; item += THREADS) {
        let g = item / staged;
        let q = item % staged;
        let iy = i32(y0 + (q / sw) * STEP_H) - off_h;
        let ix = i32(x0 + (q % sw) * STEP_W) - off_w;
        // Outside the picture the main convolution reads zeros (its padding).
        var v = vec4<f32>(0.0);
        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
            let pixel = u32(iy) * p.w + u32(ix);
            if (PROJECT) {
                var acc = aux[p.proj_aux + g];
                // The input a group of 4 channels at a time; the sum in the order of the
                // separate convolution's (channel by channel).
                if (PROJ_K == 1u) {
                    acc = pointwise_acc(acc, p.proj_w + g * PROJ_CIN, PROJ_CIN, plane, pixel);
                } else {
                    // A downsampling block's projection, PROJ_K x PROJ_K (at most 2x2) at
                    // stride PROJ_K, of the block's input (res_h x res_w).
                    let rplane = p.res_h * p.res_w;
                    for (var cg = 0u; cg < (PROJ_CIN + 3u) / 4u; cg++) {
                        var x: array<vec4<f32>, 4>;
                        for (var t = 0u; t < PROJ_K * PROJ_K; t++) {
                            let row = u32(iy) * PROJ_K + t / PROJ_K;
                            x[t] = vec4<f32>(input[cg * rplane + row * p.res_w + u32(ix) * PROJ_K + t % PROJ_K]);
                        }
                        for (var j = 0u; j < 4u; j++) {
                            let ci = cg * 4u + j;
                            if (ci < PROJ_CIN) {
                                let wb = p.proj_w + (g * PROJ_CIN + ci) * PROJ_K * PROJ_K;
                                for (var t = 0u; t < PROJ_K * PROJ_K; t++) {
                                    acc += x[t][j] * vec4<f32>(weights[wb + t]);
                                }
                            }
                        }
                    }
                }
                v = prelu4(acc, aux[p.proj_aux + p.mid_groups + g]);
            } else {
                // The padding channels of the last group read as zeros.
                v = select(vec4<f32>(0.0), vec4<f32>(mid[g * plane + pixel]), real(g, MID));
            }
        }
        tile[item] = v;
    }
    workgroupBarrier();
    if (FIRST) {
        first_conv(x0, y0, lid);
    }

    // This invocation's pixel, and its lane among those that share it.
    let pixels = TILE_W * TILE_H;
    let lanes = THREADS / pixels;
    let q = lid % pixels;
    let lane = lid / pixels;
    let tx = q % TILE_W;
    let ty = q / TILE_W;
    let ox = x0 + tx * STEP_W;
    let oy = y0 + ty * STEP_H;
    let valid = ox < p.w && oy < p.h;
    let pixel = oy * p.w + ox;

    // Phase 2: main convolution, this lane's output groups lane, lane + lanes, ... (MID <= 32:
    // at most 8), accumulated in registers; each staged vec4 (4 channels at one tap) is read
    // once and feeds them all.
    let per = (mg + lanes - 1u) / lanes;
    var m: array<vec4<f32>, 8>;
    for (var k = 0u; k < per; k++) {
        let go = lane + k * lanes;
        if (go < mg) {
            m[k] = aux[p.main_aux + go];
        }
    }
    let taps = K_H * K_W;
    if (valid) {
        for (var cg = 0u; cg < mg; cg++) {
            for (var ky = 0u; ky < K_H; ky++) {
                for (var kx = 0u; kx < K_W; kx++) {
                    let v = tile[cg * halo + (ty + ky * TD_H) * HALO_W + tx + kx * TD_W];
                    for (var k = 0u; k < per; k++) {
                        let go = lane + k * lanes;
                        if (go < mg) {
                            // Channels past MID read zeros in v: their weights do not matter.
                            let wi = p.main_w + ((go * MID + cg * 4u) * K_H + ky) * K_W + kx;
                            m[k] += taps4(v, wi, taps);
                        }
                    }
                }
            }
        }
    }
    for (var k = 0u; k < per; k++) {
        let go = lane + k * lanes;
        if (go < mg) {
            m[k] = prelu4(m[k], aux[p.main_aux + p.mid_groups + go]);
        }
    }
    if (!EXPAND) {
        if (valid) {
            for (var k = 0u; k < per; k++) {
                let go = lane + k * lanes;
                if (go < mg) {
                    output[go * plane + pixel] = act4(m[k]);
                }
            }
        }
        return;
    }

    // The main convolution's outputs replace its input in workgroup memory once every lane
    // has read that.
    workgroupBarrier();
    for (var k = 0u; k < per; k++) {
        let go = lane + k * lanes;
        if (go < mg) {
            tile[go * pixels + q] = m[k];
        }
    }
    workgroupBarrier();
    if (!valid) {
        return;
    }

    // Phase 3: expansion back to the block's channels, this lane's groups lane, lane +
    // lanes, ...; the residual; the block's PReLU.
    var x: array<vec4<f32>, 8>;
    for (var cg = 0u; cg < mg; cg++) {
        x[cg] = tile[cg * pixels + q];
    }
    let cgroups = (CH + 3u) / 4u;
    for (var k = 0u; k < (cgroups + lanes - 1u) / lanes; k++) {
        let g = lane + k * lanes;
        if (g >= cgroups) {
            break;
        }
        var acc = aux[p.exp_aux + g];
        let wb = p.exp_w + g * MID;
        for (var cg = 0u; cg < mg; cg++) {
            let xv = x[cg];
            let wi = wb + cg * 4u;
            acc += xv.x * vec4<f32>(weights[wi]);
            if (cg * 4u + 1u < MID) {
                acc += xv.y * vec4<f32>(weights[wi + 1u]);
            }
            if (cg * 4u + 2u < MID) {
                acc += xv.z * vec4<f32>(weights[wi + 2u]);
            }
            if (cg * 4u + 3u < MID) {
                acc += xv.w * vec4<f32>(weights[wi + 3u]);
            }
        }
        var v = prelu4(acc, aux[p.exp_aux + p.exp_groups + g]);
        // A residual of fewer channels is zero-padded (a downsampling block's).
        var r = vec4<f32>(0.0);
        if (g * 4u < RES_C) {
            if (POOL) {
                r = pool(g, ox, oy, pixel);
            } else {
                r = vec4<f32>(residual[g * plane + pixel]);
            }
            r = select(vec4<f32>(0.0), r, real(g, RES_C));
        }
        v = prelu4(v + r, aux[p.exp_aux + 2u * p.exp_groups + g]);
        output[g * plane + pixel] = act4(v);
    }
}
