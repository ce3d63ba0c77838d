// A class map at any output size from the network's class probabilities, one invocation per
// output pixel (`upscale_common.wgsl` decides each). The grid may be a window of the output
// (`x0`, `y0`, `grid_w` x `grid_h`): the page asks for the class under one point this way.

struct UpscaleParams {
    net_w: u32, net_h: u32, src_w: u32, src_h: u32,
    out_w: u32, out_h: u32, channels: u32, mode: u32,
    inv_space: f32, inv_range: f32, x0: u32, y0: u32,
    grid_w: u32, grid_h: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: UpscaleParams;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var guide: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> classes: array<u32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.grid_w || gid.y >= p.grid_h) {
        return;
    }
    let u = Upscale(p.net_w, p.net_h, p.src_w, p.src_h, p.out_w, p.out_h, p.channels, p.mode,
        p.inv_space, p.inv_range);
    classes[gid.y * p.grid_w + gid.x] = upscale_class(u, p.x0 + gid.x, p.y0 + gid.y);
}
