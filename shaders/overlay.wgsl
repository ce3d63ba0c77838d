// Class map -> picture on the canvas. A full-screen triangle over a target of any size (the
// canvas at the screen's pixel density): the source frame is sampled bilinearly, class-map
// pixels are picked by nearest neighbour in integer arithmetic (so the CPU twin and the page's
// "which class is here" agree with it exactly).
//
// Views: 0 overlay (class colours blended over the frame at `alpha`), 1 mask (class colours
// only), 2 side by side (frame | mask, each panel half the target's width). `mirror` flips
// each panel left-right (a front camera). A palette entry's alpha 0 hides that class; the
// void class is never coloured.

struct OverlayParams {
    src_w: u32, src_h: u32, net_w: u32, net_h: u32,
    out_w: u32, out_h: u32, view: u32, mirror: u32,
    alpha: f32, void_class: u32, num_classes: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: OverlayParams;
@group(0) @binding(1) var frame: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> classes: array<u32>;
@group(0) @binding(3) var<storage, read> palette: array<vec4<f32>>;
@group(0) @binding(4) var frame_sampler: sampler;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    var x = u32(pos.x);
    let y = min(u32(pos.y), p.out_h - 1u);
    // Panel width, and what this pixel shows: 0 blend, 1 frame, 2 mask.
    var pw = p.out_w;
    var show = 0u;
    if (p.view == 1u) {
        show = 2u;
    } else if (p.view == 2u) {
        pw = max(p.out_w / 2u, 1u);
        show = 1u;
        if (x >= pw) {
            x -= pw;
            show = 2u;
        }
        if (x >= pw) {
            // The odd column of an odd-width target.
            return vec4<f32>(0.0, 0.0, 0.0, 1.0);
        }
    }
    x = min(x, pw - 1u);
    if (p.mirror != 0u) {
        x = pw - 1u - x;
    }
    let uv = vec2<f32>((f32(x) + 0.5) / f32(pw), (f32(y) + 0.5) / f32(p.out_h));
    let src = textureSampleLevel(frame, frame_sampler, uv, 0.0).rgb;
    if (show == 1u) {
        return vec4<f32>(src, 1.0);
    }
    let cx = min((2u * x + 1u) * p.net_w / (2u * pw), p.net_w - 1u);
    let cy = min((2u * y + 1u) * p.net_h / (2u * p.out_h), p.net_h - 1u);
    let c = classes[cy * p.net_w + cx];
    var color = vec4<f32>(0.0);
    if (c != p.void_class && c < p.num_classes) {
        color = palette[c];
    }
    if (show == 2u) {
        return vec4<f32>(color.rgb * color.a, 1.0);
    }
    return vec4<f32>(mix(src, color.rgb, p.alpha * color.a), 1.0);
}
