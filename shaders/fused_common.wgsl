// What the fused kernels (bottleneck.wgsl, upsample.wgsl) both compute. Each binds
// `weights` (packed as for the conv kernels: a vec4 over 4 output channels per input
// channel and tap, taps innermost) and `input` (vec4 groups, layout.wgsl).

// One input group `v` (4 channels) times its 4 channels' weight vectors, `stride` apart
// from `wi`: summed in this order, as the separate convolutions sum them.
fn taps4(v: vec4<f32>, wi: u32, stride: u32) -> vec4<f32> {
    return v.x * vec4<f32>(weights[wi]) + v.y * vec4<f32>(weights[wi + stride])
        + v.z * vec4<f32>(weights[wi + 2u * stride]) + v.w * vec4<f32>(weights[wi + 3u * stride]);
}

// `acc` plus a 1x1 convolution of `input` (`cin` channels, planes of `plane` pixels) at
// `pixel`, its weights for one output group from `wb`: the input a group of 4 channels at
// a time, summed channel by channel, the padding channels of the last group skipped.
fn pointwise_acc(acc: vec4<f32>, wb: u32, cin: u32, plane: u32, pixel: u32) -> vec4<f32> {
    var a = acc;
    for (var cg = 0u; cg < (cin + 3u) / 4u; cg++) {
        let x = vec4<f32>(input[cg * plane + pixel]);
        for (var j = 0u; j < 4u; j++) {
            if (cg * 4u + j < cin) {
                a += x[j] * vec4<f32>(weights[wb + cg * 4u + j]);
            }
        }
    }
    return a;
}
