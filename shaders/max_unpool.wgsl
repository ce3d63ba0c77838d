// Max-unpool in gather form: output (y, x) takes the pooled value of its 2x2 window when
// that window's saved index points at (y, x), else zero. Equivalent to PyTorch's scatter
// because the indices come from a 2x2 stride 2 pool and never leave their window.

struct PoolParams {
    channels: u32, in_h: u32, in_w: u32, out_h: u32,
    out_w: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    let c = gid.z;
    if (x >= p.out_w || y >= p.out_h) {
        return;
    }
    var v = 0.0;
    let px = x / 2u;
    let py = y / 2u;
    if (px < p.in_w && py < p.in_h) {
        let i = py * p.in_w + px;
        let plane = p.in_h * p.in_w;
        if (indices[c * plane + i] == y * p.out_w + x) {
            v = f32(input[at(c, i, plane)]);
        }
    }
    output[at(c, y * p.out_w + x, p.out_h * p.out_w)] = act(v);
}
