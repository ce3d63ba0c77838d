//! `enet eval`: class mIoU, per-class IoU and pixel accuracy over a labelled folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::backend::{self, Chosen, Runner};
use super::images::{classify, decode, open_rgba, read_whole};
use super::{EvalArgs, PrecisionArg, load_model};
use enet_wgpu::{Model, Segmenter};

/// Images of `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// One confusion matrix over every labelled pixel: rows are labels, columns predictions.
pub struct Confusion {
    n: usize,
    counts: Vec<u64>,
}

impl Confusion {
    pub fn new(n: usize) -> Self {
        Confusion {
            n,
            counts: vec![0; n * n],
        }
    }

    pub fn add(&mut self, label: usize, pred: usize) {
        self.counts[label * self.n + pred] += 1;
    }

    /// IoU of every class except `void` (None where the class never occurs).
    pub fn iou(&self, void: Option<usize>) -> Vec<Option<f64>> {
        let n = self.n;
        let real = |c: usize| Some(c) != void;
        (0..n)
            .map(|c| {
                if !real(c) {
                    return None;
                }
                let tp = self.counts[c * n + c];
                let fp: u64 = (0..n)
                    .filter(|&l| l != c && real(l))
                    .map(|l| self.counts[l * n + c])
                    .sum();
                let fn_: u64 = (0..n)
                    .filter(|&p| p != c)
                    .map(|p| self.counts[c * n + p])
                    .sum();
                let denom = tp + fp + fn_;
                (denom > 0).then(|| tp as f64 / denom as f64)
            })
            .collect()
    }

    pub fn pixel_accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let correct: u64 = (0..self.n).map(|c| self.counts[c * self.n + c]).sum();
        if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        }
    }
}

pub fn run(a: EvalArgs) -> Result<()> {
    let images_dir = a.data.join("images");
    let labels_dir = a.data.join("labels");
    if !images_dir.is_dir() || !labels_dir.is_dir() {
        bail!("{} must hold images/ and labels/ folders", a.data.display());
    }
    let mut images = list_images(&images_dir)?;
    if let Some(n) = a.limit {
        images.truncate(n);
    }
    if images.is_empty() {
        bail!("no PNG or JPEG images in {}", images_dir.display());
    }
    let model = load_model(a.weights.as_deref())?;
    let n = model.num_classes();
    let void = model.void_class;
    let gpu_only = backend::gpu_only(&[
        ("--precision f16", Some(a.precision)),
        ("--compare-precision f16", a.compare_precision),
    ]);
    let chosen = backend::choose(a.backend, gpu_only)?;
    let mut seg = super::runner(
        &chosen,
        &model,
        a.precision,
        a.size,
        a.no_tune,
        a.cpu_threads,
    )?;
    let precision = seg.precision();
    // The compared model runs on the same engine unless --compare-backend names another.
    let other_chosen = match a.compare_backend {
        Some(b) if b != a.backend => Some(backend::choose(
            b,
            backend::gpu_only(&[("--compare-precision f16", a.compare_precision)]),
        )?),
        _ => None,
    };
    let other_engine = other_chosen.as_ref().unwrap_or(&chosen);
    let compare_precision = match (other_engine, a.compare_precision) {
        (Chosen::Gpu(gpu), Some(p)) => p.resolve(gpu),
        (Chosen::Gpu(gpu), None) if other_chosen.is_some() => PrecisionArg::Auto.resolve(gpu),
        (Chosen::Cpu, _) if other_chosen.is_some() => enet_wgpu::kernels::Precision::F32,
        _ => precision,
    };
    let other_runner = |m: &Model| -> Result<Runner> {
        Ok(match other_engine {
            Chosen::Gpu(gpu) => Runner::Gpu(Box::new(Segmenter::with_precision(
                gpu,
                m,
                compare_precision,
            )?)),
            Chosen::Cpu => Runner::cpu(m, a.cpu_threads)?,
        })
    };
    let compare_alone = a.compare_precision.is_some() || other_chosen.is_some();
    let mut other = match (&a.compare, compare_alone) {
        (Some(p), _) => {
            let m = load_model(Some(p))?;
            if m.num_classes() != n {
                bail!(
                    "--compare {} has {} classes, the evaluated model {n}",
                    p.display(),
                    m.num_classes()
                );
            }
            Some(other_runner(&m)?)
        }
        (None, true) => Some(other_runner(&model)?),
        (None, false) => None,
    };
    // What the comparison is with: other weights, the same at another precision, or both.
    let compared = match &a.compare {
        Some(p) if compare_precision != precision => {
            format!("{} in {compare_precision}", p.display())
        }
        Some(p) => p.display().to_string(),
        None => format!("the same model in {compare_precision}"),
    };
    let compared = match (&other, other_chosen.is_some()) {
        (Some(o), true) => format!("{compared} on the {}", o.describe()),
        _ => compared,
    };
    // Pixels where the compared model's classes equal the evaluated one's, and all pixels.
    let (mut same, mut pixels) = (0u64, 0u64);
    let mut conf = Confusion::new(n);
    let mut other_conf = Confusion::new(n);
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {elapsed} ({eta} left)")
            .expect("valid template"),
    );
    // A picture or label that cannot be used is named and skipped; the others are scored and
    // the command fails at the end, so one bad file neither stops nor silently joins the run.
    let mut failed = 0;
    // Labelled pixels near a label boundary: (correct, all).
    let mut band = (0u64, 0u64);
    for path in &images {
        let result = (|| -> Result<()> {
            let label = read_label(&labels_dir, path, n, void)?;
            let img = open_rgba(path)?;
            if img.dimensions() != label.dimensions() {
                bail!(
                    "{} is {}x{} but its label is {}x{}",
                    path.display(),
                    img.width(),
                    img.height(),
                    label.width(),
                    label.height()
                );
            }
            let map = classify(&mut seg, &img, a.size, a.upsample, path)?;
            let theirs = match other.as_mut() {
                Some(other) => Some(classify(other, &img, a.size, a.upsample, path)?),
                None => None,
            };
            if let Some(theirs) = &theirs {
                same += map
                    .data
                    .iter()
                    .zip(&theirs.data)
                    .filter(|(x, y)| x == y)
                    .count() as u64;
                pixels += map.data.len() as u64;
            }
            let near = near_boundary(&label, BOUNDARY_BAND);
            for (i, &l) in label.as_raw().iter().enumerate() {
                let l = l as usize;
                if Some(l) == void {
                    continue;
                }
                if near[i] {
                    band.0 += (map.data[i] as usize == l) as u64;
                    band.1 += 1;
                }
                conf.add(l, map.data[i] as usize);
                if let Some(theirs) = &theirs {
                    other_conf.add(l, theirs.data[i] as usize);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            failed += 1;
            bar.suspend(|| eprintln!("error: {e:#}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scored = images.len() - failed;
    if scored == 0 {
        bail!("none of the {} images could be evaluated", images.len());
    }
    let iou = conf.iou(void);
    let valid: Vec<f64> = iou.iter().flatten().copied().collect();
    let miou = valid.iter().sum::<f64>() / valid.len().max(1) as f64;
    let acc = conf.pixel_accuracy();
    let band_acc = band.0 as f64 / band.1.max(1) as f64;
    let mean_iou = |c: &Confusion| {
        let v: Vec<f64> = c.iou(void).into_iter().flatten().collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let agreement = other.as_ref().map(|_| {
        (
            compared.clone(),
            same as f64 / pixels.max(1) as f64,
            mean_iou(&other_conf),
        )
    });
    if a.json {
        let per_class: serde_json::Map<String, serde_json::Value> = model
            .classes
            .iter()
            .zip(&iou)
            .enumerate()
            .filter(|(i, _)| Some(*i) != void)
            .map(|(_, (c, v))| {
                (
                    c.name.clone(),
                    v.map_or(serde_json::Value::Null, |v| serde_json::json!(v)),
                )
            })
            .collect();
        let mut out = serde_json::json!({
            "miou": miou,
            "per_class_iou": per_class,
            "pixel_accuracy": acc,
            "boundary_accuracy": band_acc,
            "boundary_pixels": band.1,
            "upsample": a.upsample.name(),
            "images": scored,
            "failed_images": failed,
            "precision": precision.name(),
            "backend": seg.backend(),
            "engine": seg.engine_name(),
        });
        if let Some((_, agree, other_miou)) = &agreement {
            out["agreement"] = serde_json::json!(agree);
            out["agreement_pixels"] = serde_json::json!(pixels);
            out["compared_miou"] = serde_json::json!(other_miou);
            out["compared_precision"] = serde_json::json!(compare_precision.name());
            out["compared_backend"] = serde_json::json!(other.as_ref().map(Runner::backend));
        }
        println!("{out}");
    } else {
        println!(
            "{scored} images from {} ({precision}, {})",
            a.data.display(),
            seg.describe()
        );
        for (i, (c, v)) in model.classes.iter().zip(&iou).enumerate() {
            if Some(i) == void {
                continue;
            }
            match v {
                Some(v) => println!("  {:<14} IoU {:.4}", c.name, v),
                None => println!(
                    "  {:<14} IoU  n/a (absent from labels and predictions)",
                    c.name
                ),
            }
        }
        println!(
            "class mIoU      {miou:.4} ({} classes, void ignored)",
            valid.len()
        );
        println!("pixel accuracy  {acc:.4}");
        println!(
            "near edges      {band_acc:.4} pixel accuracy within {BOUNDARY_BAND} pixels of a label boundary ({} pixels; classes brought to the labels' size by {})",
            band.1, a.upsample
        );
        if let Some((what, agree, other_miou)) = agreement {
            println!(
                "agreement       {:.3} % of {pixels} pixels have the same class with {what}",
                agree * 100.0,
            );
            println!("its class mIoU  {other_miou:.4}");
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be evaluated (named above); the figures cover the other {scored}",
            images.len()
        );
    }
    Ok(())
}

/// How far from a label boundary a pixel counts as near it (the report's "near edges").
const BOUNDARY_BAND: usize = 2;

/// Pixels within `r` pixels (a square window) of a pixel with another label, void included.
fn near_boundary(label: &image::GrayImage, r: usize) -> Vec<bool> {
    let (w, h) = (label.width() as usize, label.height() as usize);
    let l = label.as_raw();
    // Per row, then per column: does the window hold another label? Two passes of
    // "differs from the centre somewhere in the window" need the min and max of the window.
    let mut lo = vec![0u8; w * h];
    let mut hi = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let row = &l[y * w + x.saturating_sub(r)..y * w + (x + r + 1).min(w)];
            lo[y * w + x] = *row.iter().min().expect("a window holds a pixel");
            hi[y * w + x] = *row.iter().max().expect("a window holds a pixel");
        }
    }
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            (y.saturating_sub(r)..(y + r + 1).min(h)).any(|yy| {
                let j = yy * w + x;
                lo[j] != l[i] || hi[j] != l[i]
            })
        })
        .collect()
}

/// The label of `image`: `labels/<stem>.png`, 8-bit class indices below `n` (or void), whole.
fn read_label(
    labels_dir: &Path,
    image: &Path,
    n: usize,
    void: Option<usize>,
) -> Result<image::GrayImage> {
    let stem = image.file_stem().unwrap_or_default().to_string_lossy();
    let label_path = labels_dir.join(format!("{stem}.png"));
    let label = read_whole(&label_path)
        .and_then(|bytes| decode(&label_path, &bytes))
        .with_context(|| format!("cannot read the label of {}", image.display()))?;
    let label = match label {
        image::DynamicImage::ImageLuma8(l) => l,
        other => bail!(
            "{} is {:?}; labels must be 8-bit grey PNGs of class indices",
            label_path.display(),
            other.color()
        ),
    };
    if let Some(&l) = label
        .as_raw()
        .iter()
        .find(|&&l| l as usize >= n && Some(l as usize) != void)
    {
        bail!(
            "{} holds class {l}, but the model has {n} classes",
            label_path.display()
        );
    }
    Ok(label)
}

#[cfg(test)]
mod tests {
    use super::{Confusion, near_boundary};

    #[test]
    fn the_band_lies_within_r_of_a_change() {
        // 8x1 labels 0 0 0 0 1 1 1 1: within 2 of the change are x = 2..=5.
        let l = image::GrayImage::from_raw(8, 1, vec![0, 0, 0, 0, 1, 1, 1, 1]).unwrap();
        let near = near_boundary(&l, 2);
        assert_eq!(near, [false, false, true, true, true, true, false, false]);
        // Vertically and diagonally too.
        let l = image::GrayImage::from_fn(5, 5, |x, y| image::Luma([(x == 0 && y == 0) as u8]));
        let near = near_boundary(&l, 2);
        assert!(near[2 * 5 + 2] && !near[3 * 5 + 3] && !near[4 * 5]);
    }

    #[test]
    fn iou_counts_void_predictions_as_misses() {
        // Classes 0, 1 and void 2.
        let mut c = Confusion::new(3);
        c.add(0, 0);
        c.add(0, 2); // predicted void on a labelled pixel: a miss for class 0
        c.add(1, 1);
        c.add(1, 0); // a false positive for 0, a miss for 1
        let iou = c.iou(Some(2));
        assert_eq!(iou[0], Some(1.0 / 3.0));
        assert_eq!(iou[1], Some(0.5));
        assert_eq!(iou[2], None);
        assert_eq!(c.pixel_accuracy(), 0.5);
    }
}
