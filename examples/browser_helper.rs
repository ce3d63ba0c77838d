//! Helpers for the browser tests (tests/browser):
//!
//! - `y4m OUT.y4m WIDTH HEIGHT FRAMES_PER_IMAGE IMAGE...`: a Y4M video (what Chromium's fake
//!   webcam plays); the middle of each image at the video's aspect, resized to WIDTHxHEIGHT
//!   (a portrait camera from a landscape frame), 4:2:0 YCbCr (BT.601 full range,
//!   "C420jpeg").
//! - `y4m-motion OUT.y4m WIDTH HEIGHT FRAMES IMAGE NOISE PAN`: FRAMES frames of IMAGE (its
//!   middle at the clip's aspect, scaled), each
//!   with fresh uniform noise of +-NOISE grey levels and shifted PAN pixels (a fraction is
//!   allowed) further left than the one before (a still camera's sensor noise; a slow pan).
//! - `classes WEIGHTS IN NET_W NET_H OUT [gpu|cpu]`: the native engine's class map (raw bytes,
//!   one per pixel at the network size) for IN, a PNG or raw RGBA given as `file.rgba:WxH`;
//!   `cpu`: the CPU engine on one thread (the page's CPU path), else the GPU engine at f32.
//! - `odd-images DIR IMAGE`: awkward inputs made from IMAGE: grey.png, rgb16.png (16 bits per
//!   channel), one.png (1x1), odd.png (37x29), large.png (6000 px wide), vast.png (24000x24000, more than a
//!   browser decodes), truncated.png and cut-before-iend.png, cut-header.jpg, cut-scan.jpg and
//!   cut-end.jpg (partial files), appended.jpg (whole, bytes after its end marker),
//!   not-an-image.png (text) and broken.mp4 (not a video).

use std::io::Write;

use enet_wgpu::{Model, Segmenter};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("y4m") => y4m(&args[1..]),
        Some("y4m-motion") => y4m_motion(&args[1..]),
        Some("classes") => classes(&args[1..]),
        Some("odd-images") => odd_images(&args[1..]),
        _ => anyhow::bail!("usage: browser_helper y4m|y4m-motion|classes|odd-images ..."),
    }
}

fn classes(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.len() == 5 || args.len() == 6,
        "usage: classes WEIGHTS IN NET_W NET_H OUT [gpu|cpu]"
    );
    let cpu = match args.get(5).map(String::as_str) {
        None | Some("gpu") => false,
        Some("cpu") => true,
        Some(other) => anyhow::bail!("backend {other:?}: expected gpu or cpu"),
    };
    let model = Model::from_safetensors(&std::fs::read(&args[0])?)?;
    let (rgba, w, h) = match args[1].rsplit_once(':') {
        Some((path, size)) if path.ends_with(".rgba") => {
            let (w, h) = size
                .split_once('x')
                .ok_or_else(|| anyhow::anyhow!("expected WxH"))?;
            (std::fs::read(path)?, w.parse()?, h.parse()?)
        }
        _ => {
            let img = image::open(&args[1])?.to_rgba8();
            let (w, h) = (img.width() as usize, img.height() as usize);
            (img.into_raw(), w, h)
        }
    };
    let net = (args[2].parse()?, args[3].parse()?);
    if cpu {
        // One thread, as the page's worker runs it.
        let mut seg = enet_wgpu::cpu::CpuSegmenter::new(&model, Some(1))?;
        std::fs::write(&args[4], seg.segment(&rgba, w, h, net)?.data)?;
        return Ok(());
    }
    let gpu = enet_wgpu::blocking::gpu()?;
    // The page runs f32 in the browser tests (SwiftShader has no shader-f16): the same here.
    let mut seg = Segmenter::with_precision(&gpu, &model, enet_wgpu::kernels::Precision::F32)?;
    let map = pollster::block_on(seg.segment(&rgba, w, h, net))?;
    std::fs::write(&args[4], &map.data)?;
    Ok(())
}

fn odd_images(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(args.len() == 2, "usage: odd-images DIR IMAGE");
    let dir = std::path::Path::new(&args[0]);
    let img = image::open(&args[1])?;
    img.to_luma8().save(dir.join("grey.png"))?;
    img.to_rgb16().save(dir.join("rgb16.png"))?;
    image::imageops::crop_imm(&img.to_rgb8(), 200, 250, 1, 1)
        .to_image()
        .save(dir.join("one.png"))?;
    image::imageops::crop_imm(&img.to_rgb8(), 100, 150, 37, 29)
        .to_image()
        .save(dir.join("odd.png"))?;
    let (w, h) = (6000, 6000 * img.height() / img.width());
    image::imageops::resize(&img.to_rgb8(), w, h, image::imageops::FilterType::Nearest)
        .save(dir.join("large.png"))?;
    image::GrayImage::from_pixel(24000, 24000, image::Luma([90])).save(dir.join("vast.png"))?;
    let png = std::fs::read(dir.join("grey.png"))?;
    std::fs::write(dir.join("truncated.png"), &png[..png.len() / 3])?;
    std::fs::write(dir.join("cut-before-iend.png"), &png[..png.len() - 12])?;
    // JPEGs, which browsers draw however little of them arrived: cut inside the header,
    // inside the scan and just before the end marker; and one with bytes after its end.
    img.to_rgb8().save(dir.join("whole.jpg"))?;
    let jpg = std::fs::read(dir.join("whole.jpg"))?;
    let sos = jpg
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .ok_or_else(|| anyhow::anyhow!("no scan in the JPEG"))?;
    std::fs::write(dir.join("cut-header.jpg"), &jpg[..sos / 2])?;
    std::fs::write(dir.join("cut-scan.jpg"), &jpg[..(sos + jpg.len()) / 2])?;
    std::fs::write(dir.join("cut-end.jpg"), &jpg[..jpg.len() - 2])?;
    let mut appended = jpg;
    appended.extend(b"\x00 bytes after the end \xFF\xD8");
    std::fs::write(dir.join("appended.jpg"), appended)?;
    std::fs::write(
        dir.join("not-an-image.png"),
        "these are words, not pixels\n",
    )?;
    std::fs::write(
        dir.join("broken.mp4"),
        [0u8, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 1, 2, 3],
    )?;
    Ok(())
}

fn y4m(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.len() >= 5,
        "usage: y4m OUT.y4m WIDTH HEIGHT FRAMES_PER_IMAGE IMAGE..."
    );
    let (w, h): (u32, u32) = (args[1].parse()?, args[2].parse()?);
    let repeat: usize = args[3].parse()?;
    anyhow::ensure!(w % 2 == 0 && h % 2 == 0, "width and height must be even");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[0])?);
    writeln!(out, "YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg")?;
    for path in &args[4..] {
        let img = middle(&image::open(path)?.to_rgb8(), w, h);
        let img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        let (y, u, v) = to_yuv420(&img);
        for _ in 0..repeat {
            out.write_all(b"FRAME\n")?;
            out.write_all(&y)?;
            out.write_all(&u)?;
            out.write_all(&v)?;
        }
    }
    Ok(())
}

fn y4m_motion(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.len() == 7,
        "usage: y4m-motion OUT.y4m WIDTH HEIGHT FRAMES IMAGE NOISE PAN"
    );
    let (w, h): (u32, u32) = (args[1].parse()?, args[2].parse()?);
    let frames: u32 = args[3].parse()?;
    let (noise, pan): (f32, f32) = (args[5].parse()?, args[6].parse()?);
    anyhow::ensure!(pan >= 0.0, "PAN must not be negative");
    anyhow::ensure!(w % 2 == 0 && h % 2 == 0, "width and height must be even");
    // Wide enough for the whole pan; the view slides over it.
    let wide = w + (pan * frames as f32).ceil() as u32;
    // The view's aspect, then scaled to the clip's size (wider by the pan).
    let img = middle(&image::open(&args[4])?.to_rgb8(), w, h);
    let img = image::imageops::resize(&img, wide, h, image::imageops::FilterType::Triangle);
    let mut rng = enet_wgpu::model::weights::SplitMix(5);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[0])?);
    writeln!(out, "YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg")?;
    for k in 0..frames {
        let view = image::imageops::crop_imm(&img, (k as f32 * pan) as u32, 0, w, h).to_image();
        let (mut y, u, v) = to_yuv420(&view);
        for p in &mut y {
            let n = rng.uniform(-noise, noise + 1.0).floor();
            *p = (*p as f32 + n).clamp(0.0, 255.0) as u8;
        }
        out.write_all(b"FRAME\n")?;
        out.write_all(&y)?;
        out.write_all(&u)?;
        out.write_all(&v)?;
    }
    Ok(())
}

/// The middle of `img` at the aspect of `w` x `h`: what a camera of that shape sees of the
/// scene (a portrait camera from a landscape frame).
fn middle(img: &image::RgbImage, w: u32, h: u32) -> image::RgbImage {
    let (iw, ih) = img.dimensions();
    let (cw, ch) = if iw as u64 * h as u64 > ih as u64 * w as u64 {
        ((ih as u64 * w as u64 / h as u64) as u32, ih)
    } else {
        (iw, (iw as u64 * h as u64 / w as u64) as u32)
    };
    image::imageops::crop_imm(img, (iw - cw) / 2, (ih - ch) / 2, cw, ch).to_image()
}

fn to_yuv420(img: &image::RgbImage) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (w, h) = img.dimensions();
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut y = Vec::with_capacity((w * h) as usize);
    for p in img.pixels() {
        let [r, g, b] = p.0.map(|c| c as f32);
        y.push(clamp(0.299 * r + 0.587 * g + 0.114 * b));
    }
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for cy in (0..h).step_by(2) {
        for cx in (0..w).step_by(2) {
            let mut acc = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = img.get_pixel(cx + dx, cy + dy).0;
                for k in 0..3 {
                    acc[k] += p[k] as f32 / 4.0;
                }
            }
            let [r, g, b] = acc;
            u.push(clamp(128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b));
            v.push(clamp(128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b));
        }
    }
    (y, u, v)
}
