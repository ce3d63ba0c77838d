//! The README's picture of sharp edges: a CamVid val frame segmented at 240x176 and drawn at a
//! phone's pixel ratio (3x the frame): its label, nearest neighbour and edge-aware upscaling
//! (the GPU kernel), cropped around the frame's largest patch of each of two classes (by its
//! label, away from the frame's sides).
//!
//! `cargo run --release --example edge_crops -- VAL_DIR NAME OUT.png`

use enet_wgpu::kernels::twin;
use enet_wgpu::kernels::upscale::Upscale;
use enet_wgpu::{Model, Segmenter};

const NET: (usize, usize) = (240, 176);
const SCALE: usize = 3;
/// A crop, in frame pixels.
const CROP: (usize, usize) = (64, 48);
const CLASSES: [&str; 2] = ["pole", "pedestrian"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 3, "usage: edge_crops VAL_DIR NAME OUT.png");
    let dir = std::path::Path::new(&args[0]);
    let img = image::open(dir.join("images").join(format!("{}.jpg", args[1])))?.to_rgba8();
    let label = image::open(dir.join("labels").join(format!("{}.png", args[1])))?.to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let model = Model::from_safetensors(
        enet_wgpu::assets::default_model().ok_or_else(|| anyhow::anyhow!("no built-in model"))?,
    )?;
    let gpu = enet_wgpu::blocking::gpu()?;
    let mut seg = Segmenter::with_precision(&gpu, &model, enet_wgpu::kernels::Precision::F32)?;
    let out = (w * SCALE, h * SCALE);
    let palette: Vec<[u8; 3]> = model.classes.iter().map(|c| c.color).collect();
    let draw_map = |classes: &[u8]| {
        let opts = twin::Compose {
            palette: &palette,
            hidden: &[],
            void: model.void_class,
            alpha: 0.55,
            view: twin::View::Overlay,
            mirror: false,
        };
        twin::compose(
            img.as_raw(),
            w,
            h,
            classes,
            out.0,
            out.1,
            &opts,
            out.0,
            out.1,
        )
    };
    let mut draw = |mode| -> anyhow::Result<Vec<u8>> {
        let map = pollster::block_on(seg.segment_to(img.as_raw(), (w, h), NET, out, mode))?;
        Ok(draw_map(&map.data))
    };
    let truth = {
        let data: Vec<u8> = (0..out.0 * out.1)
            .map(|i| label.as_raw()[(i / out.0 / SCALE) * w + (i % out.0) / SCALE])
            .collect();
        draw_map(&data)
    };
    let pictures = [truth, draw(Upscale::Nearest)?, draw(Upscale::Edge)?];
    let (cw, ch) = (CROP.0 * SCALE, CROP.1 * SCALE);
    let gap = 6;
    let mut sheet = image::RgbaImage::from_pixel(
        (3 * cw + 2 * gap) as u32,
        (CLASSES.len() * ch + (CLASSES.len() - 1) * gap) as u32,
        image::Rgba([255, 255, 255, 255]),
    );
    for (row, name) in CLASSES.iter().enumerate() {
        let class = model
            .classes
            .iter()
            .position(|c| c.name == *name)
            .ok_or_else(|| anyhow::anyhow!("the model has no class {name}"))?;
        // The crop holding the most pixels of the class.
        let mut best = (0, 0, 0);
        for y in (0..=h - CROP.1).step_by(4) {
            for x in (8..=w - CROP.0 - 8).step_by(4) {
                let n = (y..y + CROP.1)
                    .flat_map(|yy| (x..x + CROP.0).map(move |xx| (xx, yy)))
                    .filter(|&(xx, yy)| label.get_pixel(xx as u32, yy as u32)[0] as usize == class)
                    .count();
                if n > best.0 {
                    best = (n, x, y);
                }
            }
        }
        let (_, x0, y0) = best;
        println!("{name}: crop at {x0},{y0} ({} labelled pixels)", best.0);
        for (col, pic) in pictures.iter().enumerate() {
            for y in 0..ch {
                for x in 0..cw {
                    let i = ((y0 * SCALE + y) * out.0 + x0 * SCALE + x) * 4;
                    sheet.put_pixel(
                        (col * (cw + gap) + x) as u32,
                        (row * (ch + gap) + y) as u32,
                        image::Rgba([pic[i], pic[i + 1], pic[i + 2], 255]),
                    );
                }
            }
        }
    }
    sheet.save(&args[2])?;
    println!("{} (left to right: label, nearest, edge-aware)", args[2]);
    Ok(())
}
