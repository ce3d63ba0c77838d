// Frame -> network input: reads the RGBA8 source texture, resizes bilinearly with
// half-pixel centres (align_corners=False) when sizes differ, and normalises to
// (value / 255 - mean) / std, RGB as channels 0 to 2 (layout.wgsl). Prefixed by resize_common.wgsl.

struct PreParams {
    src_w: u32, src_h: u32, dst_w: u32, dst_h: u32,
    mean: vec4<f32>,
    stddev: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: PreParams;
@group(0) @binding(1) var source: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.dst_w || gid.y >= p.dst_h) {
        return;
    }
    let v = normalised(gid.x, gid.y, p.dst_w, p.dst_h);
    let hw = p.dst_w * p.dst_h;
    let pixel = gid.y * p.dst_w + gid.x;
    output[at(0u, pixel, hw)] = act(v.r);
    output[at(1u, pixel, hw)] = act(v.g);
    output[at(2u, pixel, hw)] = act(v.b);
}
