// Shared by conv2d.wgsl, conv1x1.wgsl and conv_transpose2d.wgsl: bindings, parameters and
// the epilogue (folded BatchNorm bias, PReLU, optional residual + second PReLU).
//
// Each invocation computes one output pixel for 16 output channels: four groups of 4, so
// every input value loaded feeds 16 multiply-adds. Weights are packed as vec4 over output
// channels, group-major: weights[w_off + ((g * in_c + ci) * k_h + ky) * k_w + kx], with the
// group count padded to a multiple of 4 (zero weights). aux holds, per group g: bias at
// aux_off + g, slope at aux_off + groups + g and the post-residual slope at
// aux_off + 2 * groups + g. ReLU is slope 0, identity slope 1.

struct ConvParams {
    in_c: u32, in_h: u32, in_w: u32, out_c: u32,
    out_h: u32, out_w: u32, k_h: u32, k_w: u32,
    stride_h: u32, stride_w: u32, pad_h: u32, pad_w: u32,
    dil_h: u32, dil_w: u32, w_off: u32, aux_off: u32,
    res_c: u32, has_res: u32, groups: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> weights: array<act4>;
@group(0) @binding(2) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> input: array<act>;
@group(0) @binding(4) var<storage, read> residual: array<act>;
@group(0) @binding(5) var<storage, read_write> output: array<act>;

// Stores group g's outputs at `pixel` and returns them as stored (rounded to the storage
// precision; zeros past out_c).
fn store_group(acc: vec4<f32>, g: u32, pixel: u32) -> vec4<f32> {
    var stored = vec4<f32>(0.0);
    if (g * 4u >= p.out_c) {
        return stored;
    }
    var v = prelu4(acc, aux[p.aux_off + p.groups + g]);
    let hw = p.out_h * p.out_w;
    if (p.has_res != 0u) {
        var r = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let co = g * 4u + j;
            // A residual with fewer channels is zero-padded (ENet's downsampling skip).
            if (co < p.res_c) {
                r[j] = f32(residual[at(co, pixel, hw)]);
            }
        }
        v = prelu4(v + r, aux[p.aux_off + 2u * p.groups + g]);
    }
    for (var j = 0u; j < 4u; j++) {
        let co = g * 4u + j;
        if (co < p.out_c) {
            output[at(co, pixel, hw)] = act(v[j]);
            stored[j] = f32(act(v[j]));
        }
    }
    return stored;
}

// The four groups' biases, and the stride between their weights.
fn group_bias(g0: u32, j: u32) -> vec4<f32> {
    return aux[p.aux_off + g0 + j];
}

// The four groups' 16 channels at `pixel`, stored; returned as stored.
fn store_all(a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, g0: u32, pixel: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        store_group(a0, g0, pixel),
        store_group(a1, g0 + 1u, pixel),
        store_group(a2, g0 + 2u, pixel),
        store_group(a3, g0 + 3u, pixel),
    );
}
