// Class map -> picture on the canvas. A full-screen triangle over a target of any size (the
// canvas at the screen's pixel density): the source frame is sampled bilinearly, and each
// target pixel's class is either the nearest class-map pixel, picked in integer arithmetic
// (so the CPU twin and the page's "which class is here" agree with it exactly), or decided
// from the class probabilities at this pixel's own resolution (`upscale` 1 bilinear, 2 edge:
// upscale_common.wgsl, guided by the frame), so class boundaries are drawn at the screen's
// resolution along the picture's edges.
//
// Views: 0 overlay (class colours blended over the frame at `alpha`), 1 mask (class colours
// only), 2 side by side (frame | mask, each panel half the target's width). `mirror` flips
// each panel left-right (a front camera). A palette entry's alpha 0 hides that class; the
// void class is never coloured.

struct OverlayParams {
    src_w: u32, src_h: u32, net_w: u32, net_h: u32,
    out_w: u32, out_h: u32, view: u32, mirror: u32,
    alpha: f32, void_class: u32, num_classes: u32, upscale: u32,
    inv_space: f32, inv_range: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: OverlayParams;
// The frame: drawn, and the guide of edge-aware upscaling.
@group(0) @binding(1) var guide: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> classes: array<u32>;
@group(0) @binding(3) var<storage, read> palette: array<vec4<f32>>;
@group(0) @binding(4) var frame_sampler: sampler;
// Class probabilities at the network's size (planar), read when `upscale` is not 0.
@group(0) @binding(5) var<storage, read> probs: array<f32>;

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
    let src = textureSampleLevel(guide, frame_sampler, uv, 0.0).rgb;
    if (show == 1u) {
        return vec4<f32>(src, 1.0);
    }
    var c: u32;
    if (p.upscale == 0u) {
        let cx = min((2u * x + 1u) * p.net_w / (2u * pw), p.net_w - 1u);
        let cy = min((2u * y + 1u) * p.net_h / (2u * p.out_h), p.net_h - 1u);
        c = classes[cy * p.net_w + cx];
    } else {
        let u = Upscale(p.net_w, p.net_h, p.src_w, p.src_h, pw, p.out_h, p.num_classes, p.upscale,
            p.inv_space, p.inv_range);
        c = upscale_class(u, x, y);
    }
    var color = vec4<f32>(0.0);
    if (c != p.void_class && c < p.num_classes) {
        color = palette[c];
    }
    if (show == 2u) {
        return vec4<f32>(color.rgb * color.a, 1.0);
    }
    return vec4<f32>(mix(src, color.rgb, p.alpha * color.a), 1.0);
}
