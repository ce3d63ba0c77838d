// A whole ENet upsampling block in one dispatch:
//   main branch: 1x1 convolution (CIN -> CH) -> max-unpool with the encoder's indices
//   convolutions: 1x1 projection (CIN -> MID) -> transposed convolution of stride 2 (KxK,
//   padding PAD) -> 1x1 expansion (MID -> CH)
//   output: PReLU(expansion + unpooled main branch)
// each convolution with its folded BatchNorm bias and activation slope, as the separate
// kernels compute them.
//
// A workgroup owns 8x8 output pixels, THREADS / 64 invocations (lanes) each: 4 on GPUs, 1 on
// CPU emulations, which run invocations one after the other. They unpool 4x4 pixels of the
// block's input and their transposed convolution reads the projection of LT x LT of them
// (4x4 for 2x2 kernels, 5x5 for 3x3 with padding 1): both are first computed into workgroup
// memory, all invocations sharing that work, so neither goes to memory. Then
// each pixel's transposed-convolution groups are split over its lanes, their outputs staged
// in workgroup memory too, and its expansion groups likewise. The shapes are pipeline
// constants, one pipeline per kind of block, so every loop unrolls. Weights and per-channel
// values are packed as for the conv kernels (conv_common.wgsl): vec4 over groups of 4 output
// channels.

override THREADS: u32;
override CIN: u32;
override CH: u32;
override MID: u32;
override K: u32;
override PAD: u32;
override LT: u32;

struct UpsampleParams {
    h: u32, w: u32, in_h: u32, in_w: u32,
    main_w: u32, main_aux: u32, proj_w: u32, proj_aux: u32,
    tconv_w: u32, tconv_aux: u32, exp_w: u32, exp_aux: u32,
    ch_groups: u32, mid_groups: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: UpsampleParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
// Activations by group of 4 channels (layout.wgsl): group g of pixel i (of n) at g * n + i.
@group(0) @binding(3) var<storage, read> input: array<act4>;
@group(0) @binding(4) var<storage, read> indices: array<u32>;
@group(0) @binding(5) var<storage, read_write> output: array<act4>;

// 16 KiB. The projection [group][LT x LT pixel], the main branch [group][4x4 pixel], the
// transposed convolution's outputs [group][8x8 pixel].
var<workgroup> tile: array<vec4<f32>, 1024>;

// A 1x1 convolution's output group `g` at input pixel `pixel`, activated.
fn pointwise(w_off: u32, aux_off: u32, groups: u32, g: u32, pixel: u32) -> vec4<f32> {
    let acc = pointwise_acc(aux[aux_off + g], w_off + g * CIN, CIN, p.in_h * p.in_w, pixel);
    return prelu4(acc, aux[aux_off + groups + g]);
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let x0 = wid.x * 8u;
    let y0 = wid.y * 8u;
    // The tile's first input pixel: every tap of its outputs lands at or after it.
    let lx0 = x0 / 2u;
    let ly0 = y0 / 2u;
    let mg = MID / 4u;
    let cg = (CH + 3u) / 4u;
    let lt2 = LT * LT;
    let proj_items = mg * lt2;
    let mids = proj_items + cg * 16u;
    for (var item = lid; item < mids; item += THREADS) {
        var v = vec4<f32>(0.0);
        if (item < proj_items) {
            let g = item / lt2;
            let q = item % lt2;
            let ix = lx0 + q % LT;
            let iy = ly0 + q / LT;
            if (ix < p.in_w && iy < p.in_h) {
                v = pointwise(p.proj_w, p.proj_aux, p.mid_groups, g, iy * p.in_w + ix);
            }
        } else {
            let g = (item - proj_items) / 16u;
            let q = (item - proj_items) % 16u;
            let ix = lx0 + q % 4u;
            let iy = ly0 + q / 4u;
            if (ix < p.in_w && iy < p.in_h) {
                v = pointwise(p.main_w, p.main_aux, p.ch_groups, g, iy * p.in_w + ix);
            }
        }
        tile[item] = v;
    }
    workgroupBarrier();
    let lanes = THREADS / 64u;
    let q8 = lid % 64u;
    let lane = lid / 64u;
    let ox = x0 + q8 % 8u;
    let oy = y0 + q8 / 8u;
    let valid = ox < p.w && oy < p.h;

    // Transposed convolution in gather form: output (oy, ox) collects input (iy, ix) where
    // oy = iy * 2 - PAD + ky. This lane's output groups: lane, lane + lanes, ... (MID <= 32:
    // at most 8).
    let per = (mg + lanes - 1u) / lanes;
    var m: array<vec4<f32>, 8>;
    for (var k = 0u; k < per; k++) {
        let go = lane + k * lanes;
        if (go < mg) {
            m[k] = aux[p.tconv_aux + go];
        }
    }
    let taps = K * K;
    for (var ky = 0u; ky < K; ky++) {
        let ty = i32(oy + PAD) - i32(ky);
        if (!valid || ty < 0 || ty % 2 != 0 || u32(ty) / 2u >= p.in_h) {
            continue;
        }
        let qy = u32(ty) / 2u - ly0;
        for (var kx = 0u; kx < K; kx++) {
            let tx = i32(ox + PAD) - i32(kx);
            if (tx < 0 || tx % 2 != 0 || u32(tx) / 2u >= p.in_w) {
                continue;
            }
            let q = qy * LT + u32(tx) / 2u - lx0;
            for (var ci = 0u; ci < mg; ci++) {
                let v = tile[ci * lt2 + q];
                for (var k = 0u; k < per; k++) {
                    let go = lane + k * lanes;
                    if (go < mg) {
                        let wi = p.tconv_w + ((go * MID + ci * 4u) * K + ky) * K + kx;
                        m[k] += taps4(v, wi, taps);
                    }
                }
            }
        }
    }
    for (var k = 0u; k < per; k++) {
        let go = lane + k * lanes;
        if (go < mg) {
            tile[mids + go * 64u + q8] = prelu4(m[k], aux[p.tconv_aux + p.mid_groups + go]);
        }
    }
    workgroupBarrier();
    if (!valid) {
        return;
    }

    // Expansion, this lane's groups lane, lane + lanes, ...; the unpooled main branch (its
    // value where the pool's index points here, zero elsewhere); the block's PReLU.
    var x: array<vec4<f32>, 8>;
    for (var ci = 0u; ci < mg; ci++) {
        x[ci] = tile[mids + ci * 64u + q8];
    }
    let plane = p.h * p.w;
    let pixel = oy * p.w + ox;
    let ix = ox / 2u;
    let iy = oy / 2u;
    let inside = ix < p.in_w && iy < p.in_h;
    let q = (iy - ly0) * 4u + ix - lx0;
    for (var k = 0u; k < (cg + lanes - 1u) / lanes; k++) {
        let g = lane + k * lanes;
        if (g >= cg) {
            break;
        }
        var acc = aux[p.exp_aux + g];
        let wb = p.exp_w + g * MID;
        for (var ci = 0u; ci < mg; ci++) {
            let xv = x[ci];
            let wi = wb + ci * 4u;
            acc += taps4(xv, wi, 1u);
        }
        var v = prelu4(acc, aux[p.exp_aux + p.ch_groups + g]);
        var r = vec4<f32>(0.0);
        if (inside) {
            let mb = tile[proj_items + g * 16u + q];
            for (var j = 0u; j < 4u; j++) {
                let c = g * 4u + j;
                if (c < CH && indices[(c * p.in_h + iy) * p.in_w + ix] == pixel) {
                    r[j] = mb[j];
                }
            }
        }
        v = prelu4(v + r, aux[p.exp_aux + 2u * p.ch_groups + g]);
        output[g * plane + pixel] = act4(v);
    }
}
