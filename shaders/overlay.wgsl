// Class map -> picture: draws the source frame with each pixel's class colour blended over
// it (opacity `alpha`; the void class is left untouched). A full-screen triangle; the
// render target has the source frame's size, so frame texels are read 1:1, and class-map
// pixels are picked by nearest neighbour.

struct OverlayParams {
    src_w: u32, src_h: u32, net_w: u32, net_h: u32,
    alpha: f32, void_class: u32, num_classes: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: OverlayParams;
@group(0) @binding(1) var frame: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> classes: array<u32>;
@group(0) @binding(3) var<storage, read> palette: array<vec4<f32>>;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let x = min(u32(pos.x), p.src_w - 1u);
    let y = min(u32(pos.y), p.src_h - 1u);
    let src = textureLoad(frame, vec2<u32>(x, y), 0);
    let cx = min(u32((f32(x) + 0.5) * f32(p.net_w) / f32(p.src_w)), p.net_w - 1u);
    let cy = min(u32((f32(y) + 0.5) * f32(p.net_h) / f32(p.src_h)), p.net_h - 1u);
    let c = classes[cy * p.net_w + cx];
    if (c == p.void_class || c >= p.num_classes) {
        return vec4<f32>(src.rgb, 1.0);
    }
    return vec4<f32>(mix(src.rgb, palette[c].rgb, p.alpha), 1.0);
}
