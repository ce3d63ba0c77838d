//! Which way of running a frame is fastest on this device, measured rather than guessed
//! (as cuDNN's benchmark mode and ONNX Runtime's tuning do): every configuration the
//! device can run is timed for a few frames, the fastest kept, and the choice remembered
//! per adapter (name, driver, backend), engine build and network size.
//!
//! The decision ([`choose`]) and the memory ([`TuneCache`]) are plain code, tested with a
//! fake clock; [`measure`] is the real clock.

use serde::{Deserialize, Serialize};

use super::Gpu;
use crate::kernels::Precision;
use crate::kernels::bottleneck::{CPU_THREADS, THREADS};
use crate::runtime::fuse::TILE_PIXELS;

/// One way to run a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Bottlenecks fused into one dispatch each (false: one op per dispatch).
    pub fused: bool,
    pub precision: Precision,
    /// Invocations per workgroup of the fused kernels.
    pub threads: usize,
    /// Output pixels of a fused bottleneck's tile, at most.
    pub tile_pixels: usize,
}

impl Config {
    /// A short name, e.g. `fused f16 256x64` (threads x tile pixels) or `unfused f32`.
    pub fn name(&self) -> String {
        if self.fused {
            format!(
                "fused {} {}x{}",
                self.precision, self.threads, self.tile_pixels
            )
        } else {
            format!("unfused {}", self.precision)
        }
    }

    pub fn parse(s: &str) -> Option<Config> {
        let parts: Vec<&str> = s.split(' ').collect();
        let precision = parts.get(1)?.parse().ok()?;
        let unfused = Config {
            fused: false,
            precision,
            threads: CPU_THREADS,
            tile_pixels: TILE_PIXELS[1],
        };
        match parts[..] {
            ["unfused", _] => Some(unfused),
            ["fused", _, layout] => {
                let (t, p) = layout.split_once('x')?;
                let c = Config {
                    fused: true,
                    threads: t.parse().ok()?,
                    tile_pixels: p.parse().ok()?,
                    ..unfused
                };
                ([CPU_THREADS, THREADS].contains(&c.threads)
                    && TILE_PIXELS.contains(&c.tile_pixels))
                .then_some(c)
            }
            _ => None,
        }
    }
}

/// What a device can run: `shader-f16` or not, and how many invocations a workgroup may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abilities {
    pub f16: bool,
    pub max_invocations: u32,
}

impl Abilities {
    pub fn of(gpu: &Gpu) -> Abilities {
        Abilities {
            f16: gpu.has_f16(),
            max_invocations: gpu.device.limits().max_compute_invocations_per_workgroup,
        }
    }
}

/// Every configuration a device with `abilities` can run, none it cannot: f16 only with
/// `shader-f16`, 256 invocations only where the limit allows. One op per dispatch has no
/// workgroup layout to vary.
pub fn candidates(abilities: Abilities) -> Vec<Config> {
    let mut precisions = vec![Precision::F32];
    if abilities.f16 {
        precisions.push(Precision::F16);
    }
    let mut out = Vec::new();
    for &precision in &precisions {
        out.push(Config {
            fused: false,
            precision,
            threads: CPU_THREADS,
            tile_pixels: TILE_PIXELS[1],
        });
        for threads in [CPU_THREADS, THREADS] {
            if threads as u32 > abilities.max_invocations {
                continue;
            }
            for tile_pixels in TILE_PIXELS {
                out.push(Config {
                    fused: true,
                    precision,
                    threads,
                    tile_pixels,
                });
            }
        }
    }
    out
}

/// One candidate's trial: its time per frame, or why it could not run.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub config: Config,
    pub ms: Result<f64, String>,
}

/// The trials of a set of candidates, one measurement at a time, so a caller that cannot
/// wait (the page, between camera frames) drives it as well as one that can ([`choose`]):
/// [`Trials::next`] names the candidate to time, [`Trials::record`] takes its time,
/// [`Trials::result`] picks the fastest median.
#[derive(Clone, Debug)]
pub struct Trials {
    candidates: Vec<Config>,
    times: Vec<Result<Vec<f64>, String>>,
    /// Which candidate each measurement is of, in order.
    order: Vec<usize>,
    at: usize,
    /// With [`Trials::leads_first`]: the leads' stage, until it is over.
    leads: Option<Leads>,
}

/// The first stage of [`Trials::leads_first`]: one lead per family is timed, then the other
/// members of a family whose lead was more than `within` times the fastest lead are passed
/// over.
#[derive(Clone, Debug)]
struct Leads {
    /// Where in the order the leads' measurements end.
    end: usize,
    /// Each candidate's family lead (an index into the candidates).
    lead_of: Vec<usize>,
    within: f64,
}

impl Trials {
    /// `rounds` rounds of every candidate in turn, so a device that slows down or speeds up
    /// meanwhile (thermals, other work) weighs on all alike.
    pub fn interleaved(candidates: &[Config], rounds: usize) -> Trials {
        let n = candidates.len();
        Trials::with_order(candidates, (0..rounds.max(1) * n).map(|i| i % n).collect())
    }

    /// Each candidate `rounds` times before the next: only one candidate need be built at a
    /// time (the page, where memory is short).
    pub fn one_by_one(candidates: &[Config], rounds: usize) -> Trials {
        let r = rounds.max(1);
        Trials::with_order(
            candidates,
            (0..r * candidates.len()).map(|i| i / r).collect(),
        )
    }

    /// Each family (fused or not, and precision) is first timed on one member, its lead: the
    /// fused family's member with the workgroup shape `lead_shape` (threads, tile pixels), as
    /// the engine running already has. Then only families whose lead took at most `within`
    /// times the fastest lead's time have their other members timed; the rest are passed
    /// over, with the reason. Workgroup shapes move a family's time by less than families
    /// differ where they differ much (SwiftShader: fused 3.6 times one op per dispatch, its
    /// shapes within 2.1 times of each other), and on a device where pipelines compile slowly
    /// every member passed over spares its compile. One candidate at a time, as
    /// [`Trials::one_by_one`].
    pub fn leads_first(
        candidates: &[Config],
        rounds: usize,
        lead_shape: (usize, usize),
        within: f64,
    ) -> Trials {
        let family = |c: &Config| (c.fused, c.precision);
        let lead_of: Vec<usize> = candidates
            .iter()
            .map(|c| {
                let members =
                    || (0..candidates.len()).filter(|&j| family(&candidates[j]) == family(c));
                members()
                    .find(|&j| {
                        let m = &candidates[j];
                        !m.fused || (m.threads, m.tile_pixels) == lead_shape
                    })
                    .or_else(|| members().next())
                    .expect("a candidate is in its own family")
            })
            .collect();
        let r = rounds.max(1);
        let (leads, rest): (Vec<usize>, Vec<usize>) =
            (0..candidates.len()).partition(|&i| lead_of[i] == i);
        let order: Vec<usize> = leads
            .iter()
            .chain(&rest)
            .flat_map(|&i| std::iter::repeat_n(i, r))
            .collect();
        let mut t = Trials::with_order(candidates, order);
        t.leads = Some(Leads {
            end: leads.len() * r,
            lead_of,
            within,
        });
        t
    }

    fn with_order(candidates: &[Config], order: Vec<usize>) -> Trials {
        Trials {
            candidates: candidates.to_vec(),
            times: vec![Ok(Vec::new()); candidates.len()],
            order,
            at: 0,
            leads: None,
        }
    }

    /// The candidate to time next; None when every trial is done.
    pub fn next(&self) -> Option<Config> {
        self.order.get(self.at).map(|&i| self.candidates[i])
    }

    /// The first candidate after [`Trials::next`]'s that is still to be timed, if any: the
    /// one to prepare meanwhile.
    pub fn next_other(&self) -> Option<Config> {
        let now = *self.order.get(self.at)?;
        // Not past the leads: what comes after them may yet be passed over.
        let end = self.leads.as_ref().map_or(self.order.len(), |l| l.end);
        self.order[self.at..end.max(self.at)]
            .iter()
            .find(|&&i| i != now && self.times[i].is_ok())
            .map(|&i| self.candidates[i])
    }

    /// The time of the candidate [`Trials::next`] named (ms per frame), or why it failed: a
    /// failed candidate is out of the later trials.
    pub fn record(&mut self, ms: Result<f64, String>) {
        let Some(&i) = self.order.get(self.at) else {
            return;
        };
        match (ms, &mut self.times[i]) {
            (Ok(ms), Ok(v)) => v.push(ms),
            (Err(e), t) => *t = Err(e),
            _ => {}
        }
        self.at += 1;
        self.skip_failed();
        let at = self.at;
        if let Some(leads) = self.leads.take_if(|l| at >= l.end) {
            self.pass_over(&leads);
            self.skip_failed();
        }
    }

    /// Moves past measurements of candidates that failed or were passed over.
    fn skip_failed(&mut self) {
        while self
            .order
            .get(self.at)
            .is_some_and(|&i| self.times[i].is_err())
        {
            self.at += 1;
        }
    }

    /// The leads are timed: the members of families far slower than the fastest are passed
    /// over.
    fn pass_over(&mut self, leads: &Leads) {
        let medians: Vec<Option<f64>> = self
            .times
            .iter()
            .map(|t| match t {
                Ok(v) if !v.is_empty() => Some(median(v)),
                _ => None,
            })
            .collect();
        let lead_ms = |i: usize| medians[i];
        let Some(fastest) = (0..self.candidates.len())
            .filter(|&i| leads.lead_of[i] == i)
            .filter_map(lead_ms)
            .min_by(f64::total_cmp)
        else {
            return;
        };
        for i in 0..self.candidates.len() {
            let lead = leads.lead_of[i];
            if lead == i {
                continue;
            }
            let name = self.candidates[lead].name();
            match lead_ms(lead) {
                Some(ms) if ms <= leads.within * fastest => {}
                Some(ms) => {
                    self.times[i] = Err(format!(
                        "passed over: {name} took {ms:.1} ms, over {} times the fastest ({fastest:.1} ms)",
                        leads.within
                    ))
                }
                None => self.times[i] = Err(format!("passed over: {name} could not run")),
            }
        }
    }

    /// Measurements done (or passed over) so far, out of all.
    pub fn progress(&self) -> (usize, usize) {
        (self.at, self.order.len())
    }

    /// Each candidate's median time (or why it has none), and the fastest; None when none ran.
    pub fn result(&self) -> (Vec<Trial>, Option<Config>) {
        let trials: Vec<Trial> = self
            .candidates
            .iter()
            .zip(&self.times)
            .map(|(&config, t)| Trial {
                config,
                ms: match t {
                    Err(e) => Err(e.clone()),
                    Ok(v) if v.is_empty() => Err("not timed".into()),
                    Ok(v) => Ok(median(v)),
                },
            })
            .collect();
        let best = trials
            .iter()
            .filter_map(|t| t.ms.as_ref().ok().map(|ms| (t.config, *ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c);
        (trials, best)
    }
}

/// The middle of `v` (not empty): the upper one of an even count.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times every candidate with `measure` (ms for one frame) in `rounds` interleaved rounds,
/// so a device that slows down or speeds up meanwhile (thermals, other work) weighs on all
/// alike, and picks the fastest median; a candidate that fails is reported and passed over.
/// None when none ran.
pub fn choose(
    candidates: &[Config],
    rounds: usize,
    mut measure: impl FnMut(Config) -> Result<f64, String>,
) -> (Vec<Trial>, Option<Config>) {
    let mut trials = Trials::interleaved(candidates, rounds);
    while let Some(config) = trials.next() {
        trials.record(measure(config));
    }
    trials.result()
}

/// What a remembered choice is valid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuneKey {
    pub adapter: String,
    pub driver: String,
    pub backend: String,
    /// The engine's version and a digest of its kernels: a new build may be faster another
    /// way, so it tunes again.
    pub engine: String,
    /// Network input (w, h).
    pub size: (usize, usize),
}

impl TuneKey {
    pub fn new(gpu: &Gpu, size: (usize, usize)) -> TuneKey {
        let info = gpu.info();
        TuneKey {
            adapter: info.name,
            driver: format!("{} {}", info.driver, info.driver_info),
            backend: format!("{:?}", info.backend),
            engine: engine_version(),
            size,
        }
    }

    /// The same adapter, driver and engine, whatever the size.
    fn same_device(&self, other: &TuneKey) -> bool {
        (&self.adapter, &self.driver, &self.backend, &self.engine)
            == (&other.adapter, &other.driver, &other.backend, &other.engine)
    }
}

/// The crate's version and an FNV-1a digest of every kernel's source.
pub fn engine_version() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for k in crate::kernels::ALL {
        for b in k.wgsl.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{} {h:016x}", env!("CARGO_PKG_VERSION"))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    key: TuneKey,
    config: String,
    ms: f64,
}

/// Remembered choices, newest last, as stored (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TuneCache {
    entries: Vec<Entry>,
}

impl TuneCache {
    /// The cache in `text`; damaged text gives an empty cache and says why, so the caller
    /// can note it (never an error: the cache only saves time).
    pub fn parse(text: &str) -> (TuneCache, Option<String>) {
        match serde_json::from_str::<TuneCache>(text) {
            Ok(c) => (c, None),
            Err(e) => (TuneCache::default(), Some(format!("ignored: {e}"))),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises")
    }

    /// The choice remembered for `key`, with its time per frame.
    pub fn get(&self, key: &TuneKey) -> Option<(Config, f64)> {
        self.entries
            .iter()
            .rev()
            .find(|e| &e.key == key)
            .and_then(|e| Some((Config::parse(&e.config)?, e.ms)))
    }

    /// The choice remembered last for this device at any size.
    pub fn latest_for_device(&self, key: &TuneKey) -> Option<Config> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.same_device(key))
            .and_then(|e| Config::parse(&e.config))
    }

    /// Remembers `config` for `key`, replacing what was there; entries of other engine
    /// builds for the same adapter are dropped (they can never match again).
    pub fn insert(&mut self, key: TuneKey, config: Config, ms: f64) {
        self.entries.retain(|e| {
            e.key != key && !(e.key.adapter == key.adapter && e.key.engine != key.engine)
        });
        self.entries.push(Entry {
            key,
            config: config.name(),
            ms,
        });
    }
}

/// Where the cache lives natively: `$XDG_CACHE_HOME/enet-wgpu/tuning.json`, or under
/// `~/.cache` (`%LOCALAPPDATA%` on Windows).
#[cfg(not(target_arch = "wasm32"))]
pub fn cache_path() -> Option<std::path::PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let base = env("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        .or_else(|| env("LOCALAPPDATA").map(std::path::PathBuf::from))?;
    Some(base.join("enet-wgpu").join("tuning.json"))
}

/// The native cache, and a note when the file was there but could not be used.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_cache() -> (TuneCache, Option<String>) {
    let Some(path) = cache_path() else {
        return (TuneCache::default(), None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (cache, note) = TuneCache::parse(&text);
            (cache, note.map(|n| format!("{}: {n}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (TuneCache::default(), None),
        Err(e) => (
            TuneCache::default(),
            Some(format!("{}: ignored: {e}", path.display())),
        ),
    }
}

/// Writes the native cache (through a temporary file, so a reader never sees half of it).
#[cfg(not(target_arch = "wasm32"))]
pub fn save_cache(cache: &TuneCache) -> std::io::Result<std::path::PathBuf> {
    let path = cache_path().ok_or_else(|| std::io::Error::other("no cache folder (set HOME)"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, cache.to_json())?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The real clock: each configuration's engine and plan built on its first frame (and warmed
/// up), kept for the rounds that follow, so a frame's time is only the frame's: GPU time from
/// timestamp queries where the adapter has them, wall time otherwise.
#[cfg(not(target_arch = "wasm32"))]
pub struct Stopwatch<'a> {
    gpu: &'a Gpu,
    model: &'a crate::model::Model,
    size: (usize, usize),
    rgba: Vec<u8>,
    built: std::collections::HashMap<Config, (super::Engine, super::Plan)>,
}

#[cfg(not(target_arch = "wasm32"))]
impl<'a> Stopwatch<'a> {
    pub fn new(gpu: &'a Gpu, model: &'a crate::model::Model, size: (usize, usize)) -> Self {
        Stopwatch {
            gpu,
            model,
            size,
            // A fixed synthetic frame: speed does not depend on the picture.
            rgba: (0..size.0 * size.1 * 4)
                .map(|i| (i * 31 % 251) as u8)
                .collect(),
            built: Default::default(),
        }
    }

    fn wait(&self) -> Result<(), String> {
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// One frame of `config`, in ms.
    pub fn frame_ms(&mut self, config: Config) -> Result<f64, String> {
        use super::{Engine, FrameOptions, Timing};
        if !self.built.contains_key(&config) {
            let m = self.model;
            let engine = Engine::for_config(self.gpu, &m.graph, m.normalization, config)
                .map_err(|e| e.to_string())?;
            let plan = engine
                .plan(self.size, self.size)
                .map_err(|e| e.to_string())?;
            for _ in 0..2 {
                plan.submit_frame(&self.rgba, FrameOptions::default())
                    .map_err(|e| e.to_string())?;
            }
            self.wait()?;
            self.built.insert(config, (engine, plan));
        }
        let plan = &self.built[&config].1;
        let timing = if plan.has_timestamps() {
            Timing::Frame
        } else {
            Timing::Off
        };
        let start = std::time::Instant::now();
        plan.submit_frame(
            &self.rgba,
            FrameOptions {
                timing,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        self.wait()?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = crate::blocking::block_on(plan.read_timings())
            .map_err(|e| e.to_string())?
            .first()
            .map(|t| t.ms);
        Ok(gpu_ms.unwrap_or(wall))
    }
}

#[cfg(test)]
mod tests;
