// Frame -> network input: reads the RGBA8 source texture, resizes bilinearly with
// half-pixel centres (align_corners=False) when sizes differ, and normalises to
// (value / 255 - mean) / std in planar RGB (NCHW) order.

struct PreParams {
    src_w: u32, src_h: u32, dst_w: u32, dst_h: u32,
    mean: vec4<f32>,
    stddev: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: PreParams;
@group(0) @binding(1) var source: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;

struct Tap {
    i0: u32,
    i1: u32,
    f: f32,
}

fn tap(o: u32, src: u32, dst: u32) -> Tap {
    let s = max((f32(o) + 0.5) * (f32(src) / f32(dst)) - 0.5, 0.0);
    let i0 = min(u32(floor(s)), src - 1u);
    return Tap(i0, min(i0 + 1u, src - 1u), s - f32(i0));
}

// Back to the exact byte, then /255 as the CPU twin does.
fn px(x: u32, y: u32) -> vec3<f32> {
    return round(textureLoad(source, vec2<u32>(x, y), 0).rgb * 255.0) / 255.0;
}

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.dst_w || gid.y >= p.dst_h) {
        return;
    }
    let tx = tap(gid.x, p.src_w, p.dst_w);
    let ty = tap(gid.y, p.src_h, p.dst_h);
    let a = px(tx.i0, ty.i0);
    let b = px(tx.i1, ty.i0);
    let c = px(tx.i0, ty.i1);
    let d = px(tx.i1, ty.i1);
    let top = a + (b - a) * tx.f;
    let bottom = c + (d - c) * tx.f;
    let v = (top + (bottom - top) * ty.f - p.mean.rgb) / p.stddev.rgb;
    let hw = p.dst_w * p.dst_h;
    let pixel = gid.y * p.dst_w + gid.x;
    output[pixel] = act(v.r);
    output[hw + pixel] = act(v.g);
    output[2u * hw + pixel] = act(v.b);
}
