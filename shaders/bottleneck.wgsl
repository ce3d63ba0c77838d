// A whole ENet bottleneck in one dispatch: 1x1 projection -> main convolution (3x3, dilated
// or not) -> 1x1 expansion -> + residual (the block's input) -> PReLU, each with its folded
// BatchNorm bias and activation slope, as the three separate convolutions compute them.
//
// A workgroup owns a tile of output pixels (tile_w x tile_h, at most 64, one invocation
// each). With `staged` it first projects the tile and its halo into workgroup memory (all 64
// invocations share that work), so the projection never goes to memory; without it (large
// dilations, whose halo does not fit in 16 KiB) the projection was computed by its own
// dispatch and is read from `mid`. The main convolution's outputs stay in registers for the
// expansion. Weights and per-channel values are packed as for the conv kernels
// (conv_common.wgsl): vec4 over groups of 4 output channels, `groups` padded to 4.

struct BottleneckParams {
    ch: u32, mid_c: u32, h: u32, w: u32,
    k_h: u32, k_w: u32, pad_h: u32, pad_w: u32,
    dil_h: u32, dil_w: u32, proj_w: u32, proj_aux: u32,
    main_w: u32, main_aux: u32, exp_w: u32, exp_aux: u32,
    mid_groups: u32, exp_groups: u32, staged: u32, _pad: u32,
    tile_w: u32, tile_h: u32, halo_w: u32, halo_h: u32,
}

@group(0) @binding(0) var<uniform> p: BottleneckParams;
@group(0) @binding(1) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> input: array<f32>;
@group(0) @binding(4) var<storage, read> mid: array<f32>;
@group(0) @binding(5) var<storage, read_write> output: array<f32>;

// 16 KiB: WebGPU's default workgroup memory. Laid out [channel group][halo pixel].
var<workgroup> tile: array<vec4<f32>, 1024>;

fn prelu4(v: vec4<f32>, slope: vec4<f32>) -> vec4<f32> {
    return select(v * slope, v, v >= vec4<f32>(0.0));
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let plane = p.h * p.w;
    let x0 = wid.x * p.tile_w;
    let y0 = wid.y * p.tile_h;
    let mg = (p.mid_c + 3u) / 4u;
    let halo = p.halo_w * p.halo_h;
    if (p.staged != 0u) {
        for (var item = lid; item < mg * halo; item += 64u) {
            let g = item / halo;
            let q = item % halo;
            let iy = i32(y0 + q / p.halo_w) - i32(p.pad_h);
            let ix = i32(x0 + q % p.halo_w) - i32(p.pad_w);
            // Outside the picture the main convolution reads zeros (its padding).
            var v = vec4<f32>(0.0);
            if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                let pixel = u32(iy) * p.w + u32(ix);
                var acc = aux[p.proj_aux + g];
                let wb = p.proj_w + g * p.ch;
                for (var ci = 0u; ci < p.ch; ci++) {
                    acc += input[ci * plane + pixel] * weights[wb + ci];
                }
                v = prelu4(acc, aux[p.proj_aux + p.mid_groups + g]);
            }
            tile[item] = v;
        }
        workgroupBarrier();
    }
    let tx = lid % p.tile_w;
    let ty = lid / p.tile_w;
    let ox = x0 + tx;
    let oy = y0 + ty;
    if (ty >= p.tile_h || ox >= p.w || oy >= p.h) {
        return;
    }

    // Main convolution: mid_c -> mid_c, kept in registers (at most 32 channels).
    var m: array<vec4<f32>, 8>;
    for (var go = 0u; go < mg; go++) {
        var acc = aux[p.main_aux + go];
        for (var ci = 0u; ci < p.mid_c; ci++) {
            let cg = ci / 4u;
            let cj = ci % 4u;
            for (var ky = 0u; ky < p.k_h; ky++) {
                let wrow = p.main_w + ((go * p.mid_c + ci) * p.k_h + ky) * p.k_w;
                for (var kx = 0u; kx < p.k_w; kx++) {
                    var v = 0.0;
                    if (p.staged != 0u) {
                        v = tile[cg * halo + (ty + ky * p.dil_h) * p.halo_w + tx + kx * p.dil_w][cj];
                    } else {
                        let iy = i32(oy + ky * p.dil_h) - i32(p.pad_h);
                        let ix = i32(ox + kx * p.dil_w) - i32(p.pad_w);
                        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                            v = mid[ci * plane + u32(iy) * p.w + u32(ix)];
                        }
                    }
                    acc += v * weights[wrow + kx];
                }
            }
        }
        m[go] = prelu4(acc, aux[p.main_aux + p.mid_groups + go]);
    }

    // Expansion back to the block's channels, the residual, the block's PReLU.
    let pixel = oy * p.w + ox;
    for (var g = 0u; g * 4u < p.ch; g++) {
        var acc = aux[p.exp_aux + g];
        let wb = p.exp_w + g * p.mid_c;
        for (var ci = 0u; ci < p.mid_c; ci++) {
            acc += m[ci / 4u][ci % 4u] * weights[wb + ci];
        }
        var v = prelu4(acc, aux[p.exp_aux + p.exp_groups + g]);
        var r = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let co = g * 4u + j;
            if (co < p.ch) {
                r[j] = input[co * plane + pixel];
            }
        }
        v = prelu4(v + r, aux[p.exp_aux + 2u * p.exp_groups + g]);
        for (var j = 0u; j < 4u; j++) {
            let co = g * 4u + j;
            if (co < p.ch) {
                output[co * plane + pixel] = v[j];
            }
        }
    }
}
