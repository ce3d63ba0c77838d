//! `enet segment`: images in, one PNG each out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::{DynamicImage, GrayImage, ImageFormat, RgbaImage};

use super::backend::{self, Runner};
use super::{OutputKind, SegmentArgs, load_model, write_atomic};
use enet_wgpu::kernels::upscale::Upscale;
use enet_wgpu::model::Model;
use enet_wgpu::segment::{ClassMap, SizeRequest, network_size};

/// Reads a picture file whole, refusing one that ends before its format's end marker.
///
/// The JPEG decoder fills a truncated file's missing rows with grey and reports success, so
/// completeness is checked on the bytes first ([`enet_wgpu::picture`]), for every format.
pub fn read_whole(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    check_whole(path, &bytes)?;
    Ok(bytes)
}

/// [`enet_wgpu::picture::check_complete`] with the file's name in the error.
pub fn check_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    enet_wgpu::picture::check_complete(bytes)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Decodes a whole picture's bytes (see [`read_whole`]) within the decoder's memory limit.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let Some(format) = reader.format() else {
        bail!("{} is not a PNG or JPEG image", path.display());
    };
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg) {
        bail!(
            "{} is a {format:?} image; only PNG and JPEG are read",
            path.display()
        );
    }
    match reader.decode() {
        Ok(img) => Ok(img),
        // The decoder's memory limit (512 MiB) keeps a huge picture from exhausting memory.
        Err(image::ImageError::Limits(_)) => {
            let size = image::ImageReader::new(std::io::Cursor::new(bytes))
                .with_guessed_format()
                .ok()
                .and_then(|r| r.into_dimensions().ok())
                .map_or(String::new(), |(w, h)| format!(" is {w}x{h}:"));
            bail!(
                "{}{size} too large to decode (over 512 MiB of pixels); scale it down first",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot decode {} (damaged or not a supported image?)",
                path.display()
            )
        }),
    }
}

/// Opens an image as RGBA8 (grey, 16-bit and CMYK are converted), with a clear error; a
/// truncated file is refused.
pub fn open_rgba(path: &Path) -> Result<RgbaImage> {
    let img = decode(path, &read_whole(path)?)?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{} has no pixels", path.display());
    }
    Ok(img.to_rgba8())
}

/// Shrinks an image on the CPU when it exceeds what the GPU can take as a texture.
pub fn fit_texture(img: RgbaImage, max_side: u32, path: &Path) -> RgbaImage {
    let (w, h) = img.dimensions();
    if w <= max_side && h <= max_side {
        return img;
    }
    let scale = max_side as f64 / w.max(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale) as u32).max(1),
        ((h as f64 * scale) as u32).max(1),
    );
    eprintln!(
        "note: {} is {w}x{h}, larger than the GPU's {max_side}-pixel texture limit; scaled to {nw}x{nh} first",
        path.display()
    );
    image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle)
}

/// Segments one decoded image; the class map comes back at the image's own size, brought
/// there by `upsample`.
pub fn classify(
    seg: &mut Runner,
    img: &RgbaImage,
    size: Option<(usize, usize)>,
    upsample: Upscale,
    path: &Path,
) -> Result<ClassMap> {
    let max_side = seg.max_source_side();
    let fitted;
    let src = if img.width() > max_side || img.height() > max_side {
        fitted = fit_texture(img.clone(), max_side, path);
        &fitted
    } else {
        img
    };
    let (w, h) = (src.width() as usize, src.height() as usize);
    let request = size.map_or(SizeRequest::Native, |(w, h)| SizeRequest::Exact(w, h));
    let net = network_size((w, h), request)?;
    if size.is_none() && net != (w, h) {
        eprintln!(
            "note: {} is {w}x{h}; ENet needs multiples of 8, so the network runs at {}x{} (bilinear resize on the GPU, classes mapped back to the image)",
            path.display(),
            net.0,
            net.1
        );
    }
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    // At the network's size or below there is nothing to bring up: the classes as they are.
    let map = if upsample == Upscale::Nearest || (iw <= net.0 && ih <= net.1) {
        seg.segment(src.as_raw(), (w, h), net)
    } else {
        // The class map is made at the image's size on the GPU, or as close to it as one
        // storage buffer holds (then nearest neighbour does the rest).
        let most = seg.max_output_pixels();
        let out = if iw * ih <= most {
            (iw, ih)
        } else {
            let scale = (most as f64 / (iw * ih) as f64).sqrt();
            (
                ((iw as f64 * scale) as usize).max(1),
                ((ih as f64 * scale) as usize).max(1),
            )
        };
        seg.segment_to(src.as_raw(), (w, h), net, out, upsample)
    }
    .with_context(|| format!("segmenting {}", path.display()))?;
    Ok(map.resize_nearest(iw, ih))
}

/// Renders a class map as the requested picture.
pub fn render(
    model: &Model,
    img: &RgbaImage,
    map: &ClassMap,
    kind: OutputKind,
    alpha: f32,
) -> DynamicImage {
    let (w, h) = img.dimensions();
    match kind {
        OutputKind::Classes => DynamicImage::ImageLuma8(
            GrayImage::from_raw(w, h, map.data.clone()).expect("class map matches the image size"),
        ),
        OutputKind::Color => {
            let mut out = RgbaImage::new(w, h);
            for (px, &c) in out.pixels_mut().zip(&map.data) {
                let color = model.classes.get(c as usize).map_or([0, 0, 0], |k| k.color);
                *px = image::Rgba([color[0], color[1], color[2], 255]);
            }
            DynamicImage::ImageRgba8(out)
        }
        OutputKind::Overlay => {
            let palette: Vec<[u8; 3]> = model.classes.iter().map(|c| c.color).collect();
            let (w, h) = (w as usize, h as usize);
            let rgba = enet_wgpu::kernels::twin::overlay(
                img.as_raw(),
                w,
                h,
                &map.data,
                map.width,
                map.height,
                &palette,
                model.void_class,
                alpha,
            );
            DynamicImage::ImageRgba8(
                RgbaImage::from_raw(w as u32, h as u32, rgba).expect("sizes match"),
            )
        }
    }
}

/// Where each input's result goes; refuses collisions and overwriting an input.
fn output_paths(inputs: &[PathBuf], out: Option<&Path>, kind: OutputKind) -> Result<Vec<PathBuf>> {
    let stem = |p: &Path| -> Result<String> {
        Ok(p.file_stem()
            .with_context(|| format!("{} has no file name", p.display()))?
            .to_string_lossy()
            .into_owned())
    };
    let suffix = kind.suffix();
    let paths: Vec<PathBuf> = if let Some(dir) = out.filter(|_| inputs.len() > 1) {
        if dir.exists() && !dir.is_dir() {
            bail!(
                "with several inputs -o must be a folder, and {} is a file",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
        inputs
            .iter()
            .map(|p| Ok(dir.join(format!("{}.png", stem(p)?))))
            .collect::<Result<_>>()?
    } else if let Some(o) = out {
        vec![if o.is_dir() {
            o.join(format!("{}.png", stem(&inputs[0])?))
        } else {
            o.to_path_buf()
        }]
    } else {
        // No -o: next to where the user is, named so that it cannot be mistaken for an input.
        inputs
            .iter()
            .map(|p| Ok(PathBuf::from(format!("{}.{suffix}.png", stem(p)?))))
            .collect::<Result<_>>()?
    };
    let mut seen = HashSet::new();
    for (p, i) in paths.iter().zip(inputs) {
        if !seen.insert(p.clone()) {
            bail!(
                "two inputs would both be written to {}; rename one or segment them separately",
                p.display()
            );
        }
        if let (Ok(a), Ok(b)) = (p.canonicalize(), i.canonicalize())
            && a == b
        {
            bail!(
                "the result for {} would overwrite the input itself",
                i.display()
            );
        }
    }
    let inputs_canon: HashSet<PathBuf> = inputs
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    for p in &paths {
        if let Ok(c) = p.canonicalize()
            && inputs_canon.contains(&c)
        {
            bail!(
                "{} is one of the inputs; it would be overwritten",
                p.display()
            );
        }
    }
    Ok(paths)
}

pub fn segment(a: SegmentArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha must be between 0 and 1, not {}", a.alpha);
    }
    let outputs = output_paths(&a.images, a.output_path.as_deref(), a.output)?;
    let model = load_model(a.weights.as_deref())?;
    let gpu_only = backend::gpu_only(&[("--precision f16", Some(a.precision))]);
    let chosen = backend::choose(a.backend, gpu_only)?;
    let mut seg = super::runner(
        &chosen,
        &model,
        a.precision,
        a.size,
        a.no_tune,
        a.cpu_threads,
    )?;
    if a.output_path.is_none() {
        let here = std::env::current_dir().map_or(".".into(), |d| d.display().to_string());
        eprintln!(
            "no -o given: writing <name>.{}.png into {here}",
            a.output.suffix()
        );
    }
    let mut failed = 0;
    for (input, out) in a.images.iter().zip(&outputs) {
        let result = (|| -> Result<()> {
            let img = open_rgba(input)?;
            let map = classify(&mut seg, &img, a.size, a.upsample, input)?;
            let picture = render(&model, &img, &map, a.output, a.alpha);
            let mut bytes = std::io::Cursor::new(Vec::new());
            picture
                .write_to(&mut bytes, ImageFormat::Png)
                .context("encoding PNG")?;
            write_atomic(out, &bytes.into_inner())
        })();
        match result {
            Ok(()) => println!("{} -> {}", input.display(), out.display()),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be segmented",
            a.images.len()
        );
    }
    Ok(())
}
