// 2x2 stride 2 max-pool that also writes PyTorch-style indices (y * in_w + x within the
// input plane) for the decoder's max-unpool. On ties the first maximum in row-major order
// wins; NaN propagates, as in PyTorch.

struct PoolParams {
    channels: u32, in_h: u32, in_w: u32, out_h: u32,
    out_w: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let c = gid.z;
    if (ox >= p.out_w || oy >= p.out_h) {
        return;
    }
    let plane = p.in_h * p.in_w;
    var best_i = (oy * 2u) * p.in_w + ox * 2u;
    var best = f32(input[at(c, best_i, plane)]);
    let taps = array<vec2<u32>, 3>(vec2<u32>(1u, 0u), vec2<u32>(0u, 1u), vec2<u32>(1u, 1u));
    for (var t = 0u; t < 3u; t++) {
        let i = (oy * 2u + taps[t].y) * p.in_w + ox * 2u + taps[t].x;
        let v = f32(input[at(c, i, plane)]);
        if (v > best || v != v) {
            best = v;
            best_i = i;
        }
    }
    let pixel = oy * p.out_w + ox;
    let out_plane = p.out_h * p.out_w;
    output[at(c, pixel, out_plane)] = act(best);
    indices[c * out_plane + pixel] = best_i;
}
