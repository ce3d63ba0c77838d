// Shared by preprocess.wgsl and frame_initial.wgsl, which declare the `source` texture and a
// parameter block `p` with src_w, src_h, mean and stddev: the network input at (x, y) of a
// dst_w x dst_h input, resized bilinearly from the frame with half-pixel centres
// (align_corners=False) and normalised to (value / 255 - mean) / std.

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

fn normalised(x: u32, y: u32, dst_w: u32, dst_h: u32) -> vec3<f32> {
    let tx = tap(x, p.src_w, dst_w);
    let ty = tap(y, p.src_h, dst_h);
    let a = px(tx.i0, ty.i0);
    let b = px(tx.i1, ty.i0);
    let c = px(tx.i0, ty.i1);
    let d = px(tx.i1, ty.i1);
    let top = a + (b - a) * tx.f;
    let bottom = c + (d - c) * tx.f;
    return (top + (bottom - top) * ty.f - p.mean.rgb) / p.stddev.rgb;
}
