//! Command-line front end. Every failure is an error message and a non-zero exit.

mod backend;
mod bench;
mod eval;
mod images;
mod info;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use enet_wgpu::kernels::upscale::Upscale;
use enet_wgpu::model::import::{self, ImportOptions};
use enet_wgpu::model::weights::{ClassInfo, camvid_classes};
use enet_wgpu::model::{Layout, Model, Normalization, expected_params};

#[derive(Parser, Debug)]
#[command(
    name = "enet",
    version,
    about = "ENet semantic segmentation on the GPU (wgpu + WGSL) or the CPU (SIMD)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List GPU adapters, the one chosen, its features and limits.
    Info,
    /// Segment images; one PNG per input.
    Segment(SegmentArgs),
    /// Class mIoU, per-class IoU and pixel accuracy over a labelled folder.
    Eval(EvalArgs),
    /// Time frames on the GPU.
    Bench(BenchArgs),
    /// Convert another implementation's checkpoint (safetensors) into this engine's format.
    Import(ImportArgs),
    /// Print the layers a layout expects: parameters, shapes and counts.
    Describe(DescribeArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OutputKind {
    /// The image with the class colours blended over it.
    Overlay,
    /// Class colours only.
    Color,
    /// 8-bit grey PNG of class indices at the input's size.
    Classes,
}

impl OutputKind {
    /// The default output name is `<stem>.<suffix>.png`.
    pub fn suffix(self) -> &'static str {
        match self {
            OutputKind::Overlay => "overlay",
            OutputKind::Color => "color",
            OutputKind::Classes => "classes",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SegmentArgs {
    /// Images to segment (PNG or JPEG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Weights file (default: the embedded model).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Output file (one input) or folder (results are OUT/<stem>.png). Without it, results
    /// go to the current folder as <stem>.overlay.png (or .color.png, .classes.png).
    #[arg(short = 'o', value_name = "OUT")]
    output_path: Option<PathBuf>,
    /// Network input size WxH, both multiples of 8 (default: the image's size, rounded).
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// What to write.
    #[arg(long = "output", value_enum, default_value_t = OutputKind::Overlay)]
    output: OutputKind,
    /// Class colour opacity for overlays, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    precision: PrecisionArg,
    /// Which engine runs: auto (a hardware GPU, else the CPU), gpu or cpu.
    #[arg(long, value_enum, default_value_t = backend::BackendArg::Auto)]
    backend: backend::BackendArg,
    /// Threads of the CPU engine (default: every core).
    #[arg(long, value_name = "N", value_parser = parse_cpu_threads)]
    cpu_threads: Option<usize>,
    /// How the class map is brought from the network's size to the image's: the nearest
    /// network pixel, the probabilities blended bilinearly, or blended along the picture's
    /// own edges (joint bilateral upsampling): nearest, bilinear or edge.
    #[arg(long, default_value_t = Upscale::default())]
    upsample: Upscale,
    /// Run the engine's default configuration, not the one `enet bench --tune` measured
    /// fastest on this device (an explicit --precision also forces it).
    #[arg(long)]
    no_tune: bool,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Folder holding images/ and labels/ (labels: 8-bit PNG class indices, same stem).
    #[arg(long)]
    data: PathBuf,
    /// Weights file (default: the embedded model).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Also run these weights on every image and report on how many pixels their classes
    /// agree with the evaluated model's (e.g. an f16 copy against its f32 original).
    #[arg(long, value_name = "WEIGHTS")]
    compare: Option<PathBuf>,
    /// Evaluate only the first N images (sorted by name).
    #[arg(long)]
    limit: Option<usize>,
    /// Network input size WxH (default: each image's own size, rounded to multiples of 8).
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    precision: PrecisionArg,
    /// Which engine runs: auto (a hardware GPU, else the CPU), gpu or cpu.
    #[arg(long, value_enum, default_value_t = backend::BackendArg::Auto)]
    backend: backend::BackendArg,
    /// Threads of the CPU engine (default: every core).
    #[arg(long, value_name = "N", value_parser = parse_cpu_threads)]
    cpu_threads: Option<usize>,
    /// Also run the model (or --compare's) at this precision and report the agreement and
    /// its mIoU (e.g. f32 against the default f16).
    #[arg(long, value_enum)]
    compare_precision: Option<PrecisionArg>,
    /// Run the compared model (--compare, --compare-precision, or the same model when only
    /// this is given) on this engine: gpu or cpu (e.g. the CPU engine against the GPU's).
    #[arg(long, value_enum)]
    compare_backend: Option<backend::BackendArg>,
    /// How the class map is brought from the network's size to the label's (as `segment`).
    #[arg(long, default_value_t = Upscale::default())]
    upsample: Upscale,
    /// As `segment --no-tune`.
    #[arg(long)]
    no_tune: bool,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Time random weights of this layout instead of a weights file (speed does not depend on
    /// the values).
    #[arg(long, value_enum, conflicts_with = "weights")]
    synthetic: Option<LayoutArg>,
    /// Network input size WxH.
    #[arg(long, value_parser = parse_size, default_value = "480x360")]
    size: (usize, usize),
    /// Timed frames (after warm-up).
    #[arg(long, default_value_t = 100)]
    frames: usize,
    /// Also time each dispatch (one timestamped pass each).
    #[arg(long)]
    per_kernel: bool,
    /// Run every op as its own dispatch (no fused bottlenecks), to compare.
    #[arg(long)]
    unfused: bool,
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    precision: PrecisionArg,
    /// Which engine runs: auto (a hardware GPU, else the CPU), gpu or cpu.
    #[arg(long, value_enum, default_value_t = backend::BackendArg::Auto)]
    backend: backend::BackendArg,
    /// Threads of the CPU engine (default: every core).
    #[arg(long, value_name = "N", value_parser = parse_cpu_threads)]
    cpu_threads: Option<usize>,
    /// Output pixels of a fused bottleneck's tile, at most: 64, or 32 for twice the
    /// workgroups (more halo per pixel), to compare on a GPU with many cores.
    #[arg(long, default_value_t = 64, value_parser = parse_tile_pixels)]
    tile_pixels: usize,
    /// Invocations per workgroup of the fused kernels: 64, or 256 (the default on GPUs; 64 on
    /// CPU emulations of one).
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
    /// Also time bringing each frame's classes to this output size WxH (e.g. a phone's
    /// 1080x1920 screen): the probabilities pass and the upscale, after the network.
    #[arg(long, value_parser = parse_any_size, value_name = "WxH")]
    upscale_to: Option<(usize, usize)>,
    /// The upscale `--upscale-to` times: nearest, bilinear or edge.
    #[arg(long, default_value_t = Upscale::default())]
    upsample: Upscale,
    /// First time every configuration this device can run (fused or not, f16 or f32,
    /// workgroup and tile sizes; the median of 5 interleaved frames each), print the
    /// trials, remember the fastest for `segment` and `eval`, then benchmark it (the flags
    /// that choose a configuration are then ignored).
    #[arg(long)]
    tune: bool,
    /// The size the trials run at (default: --size on a GPU; on a CPU emulation of one,
    /// half of each side, which picks the same winner sooner).
    #[arg(long, value_parser = parse_size, value_name = "WxH", requires = "tune")]
    trial_size: Option<(usize, usize)>,
}

/// The configuration `segment` and `eval` run: the one `enet bench --tune` remembered as
/// fastest on this adapter (at `size`, else its latest at any size), unless `--no-tune` or
/// an explicit `--precision` forces the default. A damaged cache is a note, not an error.
fn remembered_config(
    gpu: &enet_wgpu::Gpu,
    precision: PrecisionArg,
    size: Option<(usize, usize)>,
    no_tune: bool,
) -> Option<enet_wgpu::runtime::tune::Config> {
    use enet_wgpu::runtime::tune;
    if no_tune || precision != PrecisionArg::Auto {
        return None;
    }
    let (cache, note) = tune::load_cache();
    if let Some(note) = note {
        eprintln!("note: the tuning cache {note}");
    }
    let key = tune::TuneKey::new(gpu, size.unwrap_or_default());
    let config = size
        .and_then(|_| cache.get(&key).map(|(c, _)| c))
        .or_else(|| cache.latest_for_device(&key))?;
    // Measured on this adapter, so it can run here; a driver that changed its mind is
    // caught by the engine's own checks.
    eprintln!(
        "engine: {} (measured fastest here by enet bench --tune; --no-tune for the default)",
        config.name()
    );
    Some(config)
}

/// A segmenter as `remembered_config` says, or at `precision`.
fn segmenter(
    gpu: &enet_wgpu::Gpu,
    model: &enet_wgpu::Model,
    precision: PrecisionArg,
    size: Option<(usize, usize)>,
    no_tune: bool,
) -> Result<enet_wgpu::Segmenter> {
    Ok(match remembered_config(gpu, precision, size, no_tune) {
        Some(c) => enet_wgpu::Segmenter::with_config(gpu, model, c)?,
        None => enet_wgpu::Segmenter::with_precision(gpu, model, precision.resolve(gpu))?,
    })
}

/// The engine `--backend` chose with the model in it: on the GPU as [`segmenter`] makes it.
fn runner(
    chosen: &backend::Chosen,
    model: &enet_wgpu::Model,
    precision: PrecisionArg,
    size: Option<(usize, usize)>,
    no_tune: bool,
    cpu_threads: Option<usize>,
) -> Result<backend::Runner> {
    Ok(match chosen {
        backend::Chosen::Gpu(gpu) => {
            backend::Runner::Gpu(Box::new(segmenter(gpu, model, precision, size, no_tune)?))
        }
        backend::Chosen::Cpu => backend::Runner::cpu(model, cpu_threads)?,
    })
}

fn parse_cpu_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: the CPU engine runs on 1 to 256 threads")),
    }
}

/// A picture size WxH of any positive sides (an output, not a network input).
fn parse_any_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?} is not a size WxH"))?;
    match (w.parse::<usize>(), h.parse::<usize>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => Ok((w, h)),
        _ => Err(format!("{s:?}: each side must be 1 to 16384 pixels")),
    }
}

fn parse_tile_pixels(s: &str) -> Result<usize, String> {
    let sizes = enet_wgpu::runtime::fuse::TILE_PIXELS;
    s.parse()
        .ok()
        .filter(|n| sizes.contains(n))
        .ok_or_else(|| format!("{s:?} is not a tile size: {sizes:?}"))
}

fn parse_threads(s: &str) -> Result<usize, String> {
    let sizes = [
        enet_wgpu::kernels::bottleneck::CPU_THREADS,
        enet_wgpu::kernels::bottleneck::THREADS,
    ];
    s.parse()
        .ok()
        .filter(|n| sizes.contains(n))
        .ok_or_else(|| format!("{s:?} is not a workgroup size: {sizes:?}"))
}

/// How activations and weights are stored on the GPU.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PrecisionArg {
    /// f16 where the GPU has shader-f16, f32 elsewhere.
    Auto,
    F32,
    F16,
}

impl PrecisionArg {
    pub fn resolve(self, gpu: &enet_wgpu::Gpu) -> enet_wgpu::kernels::Precision {
        use enet_wgpu::kernels::Precision;
        match self {
            PrecisionArg::Auto => gpu.best_precision(),
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LayoutArg {
    Paper,
    PytorchEnet,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Paper => Layout::Paper,
            LayoutArg::PytorchEnet => Layout::PytorchEnet,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint's layout.
    #[arg(long, value_enum)]
    layout: LayoutArg,
    /// Class table: "camvid" (11 classes + void) or a JSON file of [{"name", "color": [r,g,b]}].
    #[arg(long, default_value = "camvid")]
    classes: String,
    /// Index of the void ("unlabelled") class, ignored by eval (default: 11 for camvid).
    #[arg(long)]
    void_class: Option<usize>,
    /// Per-channel mean subtracted from value/255, as "r,g,b".
    #[arg(long, value_parser = parse_triple, default_value = "0,0,0")]
    mean: [f32; 3],
    /// Per-channel std dividing (value/255 - mean), as "r,g,b".
    #[arg(long, value_parser = parse_triple, default_value = "1,1,1")]
    std: [f32; 3],
    /// The checkpoint (a state dict saved as safetensors).
    input: PathBuf,
    /// The engine weights file to write.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    #[arg(long, value_enum, default_value_t = LayoutArg::Paper)]
    layout: LayoutArg,
    #[arg(long, default_value_t = 12)]
    classes: usize,
    /// Also list every parameter tensor.
    #[arg(long)]
    params: bool,
}

pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 480x360"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("{s:?}: {v:?} is not a whole number"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if w == 0 || h == 0 {
        return Err(format!("{s:?}: both sides must be positive"));
    }
    if w % 8 != 0 || h % 8 != 0 {
        return Err(format!(
            "{s:?}: both sides must be multiples of 8 (ENet downsamples three times)"
        ));
    }
    Ok((w, h))
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f32>()
                .map_err(|_| format!("{s:?}: {p:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    v.try_into()
        .map_err(|_| format!("{s:?}: expected three comma-separated numbers"))
}

/// The model from `--weights`, or the embedded default.
pub fn load_model(weights: Option<&Path>) -> Result<Model> {
    let bytes: std::borrow::Cow<[u8]> = match weights {
        Some(p) => std::fs::read(p)
            .with_context(|| format!("cannot read weights file {}", p.display()))?
            .into(),
        None => match enet_wgpu::assets::default_model() {
            Some(b) => b.into(),
            None => bail!(
                "no default model is embedded in this build (assets/{} is missing); pass --weights FILE \
                 (a PyTorch-ENet checkpoint converts with `enet import`)",
                enet_wgpu::assets::DEFAULT_MODEL_FILE
            ),
        },
    };
    let what = weights.map_or("the embedded model".to_string(), |p| {
        p.display().to_string()
    });
    Model::from_safetensors(&bytes).with_context(|| format!("invalid weights in {what}"))
}

pub fn gpu() -> Result<enet_wgpu::Gpu> {
    enet_wgpu::blocking::gpu().context("cannot start the GPU")
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info => info::run(),
        Command::Segment(a) => images::segment(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Import(a) => import_cmd(a),
        Command::Describe(a) => describe(a),
    }
}

fn import_cmd(a: ImportArgs) -> Result<()> {
    let same = |x: &Path, y: &Path| match (x.canonicalize(), y.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(&a.input, &a.output) {
        bail!(
            "the output {} is the input; choose another path",
            a.output.display()
        );
    }
    let (classes, default_void): (Vec<ClassInfo>, Option<usize>) = if a.classes == "camvid" {
        (camvid_classes(), Some(11))
    } else {
        let text = std::fs::read_to_string(&a.classes)
            .with_context(|| format!("cannot read class table {}", a.classes))?;
        let classes =
            serde_json::from_str(&text).with_context(|| format!("class table {}", a.classes))?;
        (classes, None)
    };
    let bytes =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let (file, model) = import::import(
        &bytes,
        ImportOptions {
            layout: a.layout.into(),
            classes,
            void_class: a.void_class.or(default_void),
            normalization: Normalization {
                mean: a.mean,
                std: a.std,
            },
            provenance: None,
        },
    )
    .with_context(|| format!("cannot import {}", a.input.display()))?;
    write_atomic(&a.output, &file)?;
    println!(
        "wrote {} ({} layout, {} classes, {} parameters, BatchNorm folded at load with eps {})",
        a.output.display(),
        model.layout,
        model.num_classes(),
        model.parameter_count(),
        model.layout.bn_eps()
    );
    Ok(())
}

/// Writes through a temporary file so a failure never leaves half a file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "cannot write {}: folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn describe(a: DescribeArgs) -> Result<()> {
    if a.classes == 0 {
        bail!("--classes must be at least 1");
    }
    let layout: Layout = a.layout.into();
    let params = expected_params(layout, a.classes);
    let total: usize = params
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let stats: usize = params
        .iter()
        .filter(|p| p.name.ends_with("running_mean") || p.name.ends_with("running_var"))
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let graph = enet_wgpu::model::weights::synthetic_graph(layout, a.classes);
    println!(
        "ENet, {layout} layout, {} classes, BatchNorm eps {}",
        a.classes,
        layout.bn_eps()
    );
    println!("  parameter tensors: {}", params.len());
    println!("  trainable parameters: {}", total - stats);
    println!("  with BatchNorm running statistics: {total}");
    println!("  operations after folding: {}", graph.ops.len());
    for (w, h) in [(480, 360), (640, 360), (1024, 512)] {
        println!(
            "  multiply-adds at {w}x{h}: {:.3} G",
            graph.multiply_adds(h, w).expect("valid size") as f64 / 1e9
        );
    }
    if a.params {
        for p in &params {
            println!("{:<45} {:?}", p.name, p.shape);
        }
    }
    Ok(())
}
