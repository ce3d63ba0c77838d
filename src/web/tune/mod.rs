//! The page's tuner ([`crate::runtime::tune`] between camera frames): the first overlay comes
//! from the default configuration while the configurations this GPU can run are built and
//! timed in the frame slots the camera leaves, every other slot at most; then the fastest
//! runs, and the page keeps the choice (`localStorage`, the same JSON as the CLI's cache).
//! Each family (fused or not, precision) is first timed on one workgroup shape, the running
//! one; only families within [`WITHIN`] times the fastest have their other shapes timed
//! ([`Trials::leads_first`]), which spares slow devices the compiles of the rest.
//!
//! A candidate's pipelines are first compiled by the browser in the background
//! (`createComputePipelineAsync`); the engine is built once they are ready, and the browser
//! answers its (synchronous) pipeline requests from what it compiled. The fused kernels,
//! specialised per block and fully unrolled, take seconds to compile on a slow device, and
//! that work must not hold up the frames on screen.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use wasm_bindgen::prelude::*;

use super::{App, now_ms};
use crate::runtime::tune::{self, Config, Trial, Trials, TuneCache, TuneKey};
use crate::runtime::{FrameOptions, Timing, pipeline_specs};
use crate::segment::Segmenter;

mod warm;
use warm::{Warm, warm};

/// Timed frames per candidate (after one untimed frame): the median is kept.
const ROUNDS: usize = 3;
/// Frames the page shows before trials start, so the first overlay is never delayed.
const SHOWN_FIRST: u32 = 2;
/// A family (fused or not, precision) whose lead takes more than this many times the
/// fastest lead's time has its other workgroup shapes passed over ([`Trials::leads_first`]).
const WITHIN: f64 = 2.0;

/// A time in ms handed over from a GPU callback (which must be `Send`), or nothing yet.
#[derive(Clone)]
struct Slot(Arc<AtomicU64>);

impl Slot {
    /// No value: a bit pattern no f64 arithmetic gives.
    const EMPTY: u64 = u64::MAX;

    fn set(&self, ms: f64) {
        self.0.store(ms.to_bits(), Relaxed);
    }

    fn take(&self) -> Option<f64> {
        let bits = self.0.swap(Self::EMPTY, Relaxed);
        (bits != Self::EMPTY).then(|| f64::from_bits(bits))
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot(Arc::new(AtomicU64::new(Self::EMPTY)))
    }
}

/// How the configuration running now was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chosen {
    /// The default: not tuned (yet, or `?tune=0`).
    Default,
    /// A precision the page asked for (`?precision=`): no tuning.
    Forced,
    /// Measured on this device before, remembered by the page.
    Remembered,
    /// Measured on this visit.
    Measured,
}

impl Chosen {
    pub(super) fn name(self) -> &'static str {
        match self {
            Chosen::Default => "default",
            Chosen::Forced => "forced",
            Chosen::Remembered => "remembered",
            Chosen::Measured => "measured",
        }
    }
}

/// One candidate being prepared or timed.
struct Candidate {
    config: Config,
    warm: Rc<RefCell<Warm>>,
    segmenter: Option<Segmenter>,
    /// An untimed frame ran (a first frame pays for lazy work).
    warmed_up: bool,
    /// When its background compile started, and how long the engine build then took (ms):
    /// a short build means the browser had the pipelines ready.
    since: f64,
    build_ms: Option<f64>,
    /// When the browser said its pipelines were compiled.
    compiled_at: Option<f64>,
    first_frame_ms: Option<f64>,
}

/// Trials under way.
struct Run {
    key: TuneKey,
    net: (usize, usize),
    src: (usize, usize),
    trials: Trials,
    /// The next candidate's background compile, started once the one before is built, so it
    /// compiles while that one is timed (all at once, each would take as long as all).
    warming: Option<Candidate>,
    /// Each candidate's background compile and first frame (ms), for the table.
    costs: HashMap<Config, (f64, f64)>,
    current: Option<Candidate>,
    /// The fastest candidate timed so far, kept built.
    best: Option<(Config, f64, Segmenter)>,
    /// The last trial frame's time (ms), once the GPU has answered.
    result: Slot,
    wall: Slot,
    awaiting: bool,
    /// The last frame slot went to a trial: the next goes to the camera.
    trial_last: bool,
    started_ms: f64,
}

enum Phase {
    /// Waiting for the first frames to be shown (or nothing to do: `enabled` false).
    Idle,
    /// A remembered configuration's pipelines compiling in the background.
    Switching(Box<Candidate>),
    Trials(Box<Run>),
    Done,
}

/// The tuner's state in the App.
pub(super) struct Tuning {
    /// Trials allowed (the page's `?tune=0` says no).
    enabled: bool,
    cache: TuneCache,
    phase: Phase,
    pub(super) chosen: Chosen,
    /// The last trials' table and how long they took.
    table: Vec<Trial>,
    /// Each candidate's background compile and first frame (ms).
    costs: HashMap<Config, (f64, f64)>,
    took_ms: Option<f64>,
    /// A choice the page has not stored yet.
    unsaved: bool,
    note: Option<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            enabled: false,
            cache: TuneCache::default(),
            phase: Phase::Idle,
            chosen: Chosen::Default,
            table: Vec::new(),
            costs: HashMap::new(),
            took_ms: None,
            unsaved: false,
            note: None,
        }
    }
}

impl Tuning {
    /// Forgets work under way (another model, another source): trials start again later.
    pub(super) fn restart(&mut self) {
        if !matches!(self.phase, Phase::Done) {
            self.phase = Phase::Idle;
        }
    }
}

impl Tuning {
    /// The tuner of a new App, and the configuration it starts on (None: the default).
    /// `cache` is what the page stored of earlier trials (damaged: ignored, with a note);
    /// `tune` false (`?tune=0`) runs the default, neither measured nor remembered; `config`
    /// (`?config=`) forces one, as the CLI's flags do, unless this device cannot run it
    /// (then a note says so and the default runs).
    pub(super) fn start(
        gpu: &crate::runtime::Gpu,
        cache: Option<String>,
        tune: bool,
        config: Option<String>,
    ) -> (Tuning, Option<Config>) {
        let (cache, note) = cache.map_or((TuneCache::default(), None), |t| TuneCache::parse(&t));
        let mut t = Tuning {
            enabled: tune,
            cache,
            note: note.map(|n| format!("the remembered tuning was {n}")),
            ..Default::default()
        };
        if let Some(name) = config {
            // Asked for by name: never tuned away, and a wrong name runs the default.
            t.enabled = false;
            let runnable = tune::candidates(tune::Abilities::of(gpu));
            match Config::parse(&name) {
                Some(c) if runnable.contains(&c) => {
                    t.chosen = Chosen::Forced;
                    return (t, Some(c));
                }
                Some(_) => {
                    t.note = Some(format!(
                        "config={name} cannot run on this GPU (it runs {}); running the default",
                        runnable
                            .iter()
                            .map(Config::name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
                None => {
                    t.note = Some(format!(
                        "config={name}: expected e.g. \"unfused f32\" or \"fused f16 256x64\" (fused, precision, invocations x tile pixels); running the default"
                    ))
                }
            }
            return (t, None);
        }
        if !tune {
            return (t, None);
        }
        // Measured on this device before, at some size: the frames start on it.
        let remembered = t.cache.latest_for_device(&TuneKey::new(gpu, (0, 0)));
        if remembered.is_some() {
            t.chosen = Chosen::Remembered;
        }
        (t, remembered)
    }
}

#[wasm_bindgen]
impl App {
    /// The tuner, as JSON: `{"state": "waiting" | "switching" | "measuring" | "done" | "off",
    /// "config", "chosen": "default" | "forced" | "remembered" | "measured", "progress":
    /// [done, all], "trials": [{"config", "ms" | "error", "compile_ms", "first_frame_ms"}],
    /// "took_ms", "unsaved", "note"}`: `compile_ms` is the background compile of a
    /// candidate's pipelines, `first_frame_ms` its untimed first frame.
    pub fn tuning(&self) -> String {
        let t = &self.tuning;
        let state = match &t.phase {
            Phase::Idle if !t.enabled && t.chosen == Chosen::Default => "off",
            Phase::Idle => "waiting",
            Phase::Switching(_) => "switching",
            Phase::Trials(_) => "measuring",
            Phase::Done => "done",
        };
        let progress = match &t.phase {
            Phase::Trials(run) => Some(run.trials.progress()),
            _ => None,
        };
        let trials: Vec<serde_json::Value> = t
            .table
            .iter()
            .map(|tr| {
                let mut row = serde_json::json!({"config": tr.config.name()});
                match &tr.ms {
                    Ok(ms) => row["ms"] = (*ms).into(),
                    Err(e) => row["error"] = e.as_str().into(),
                }
                if let Some(&(compile, first)) = t.costs.get(&tr.config) {
                    row["compile_ms"] = compile.into();
                    row["first_frame_ms"] = first.into();
                }
                row
            })
            .collect();
        serde_json::json!({
            "state": state,
            "config": self.segmenter.engine().config().name(),
            "chosen": t.chosen.name(),
            "progress": progress,
            "trials": trials,
            "took_ms": t.took_ms,
            "unsaved": t.unsaved,
            "note": t.note,
        })
        .to_string()
    }

    /// The remembered choices as JSON, for the page to store; marks them stored.
    pub fn take_tuning_cache(&mut self) -> String {
        self.tuning.unsaved = false;
        self.tuning.cache.to_json()
    }
}

impl App {
    /// Gives this frame slot to the tuner when it has GPU work (a trial frame); true when it
    /// took the slot, so the camera frame is skipped. Background compiles, engine builds and
    /// the switch to a chosen configuration happen here too, between frames.
    pub(super) fn tune_step(
        &mut self,
        net: (usize, usize),
        src: (usize, usize),
        source: &wgpu::ExternalImageSource,
    ) -> bool {
        // A configuration or precision the page asked for is not tuned away.
        if self.tuning.chosen == Chosen::Forced || self.settings.precision.is_some() {
            return false;
        }
        match std::mem::replace(&mut self.tuning.phase, Phase::Idle) {
            Phase::Idle => {
                self.tuning.phase = self.tune_start(net, src);
                false
            }
            Phase::Switching(c) => {
                self.tuning.phase = self.switch_step(*c);
                false
            }
            Phase::Trials(mut run) => {
                if run.src != src {
                    // Another camera or picture: time again on what is shown.
                    return false;
                }
                let took = self.trial_step(&mut run, source);
                self.tuning.phase = if run.trials.next().is_none() && !run.awaiting {
                    self.finish(*run);
                    Phase::Done
                } else {
                    Phase::Trials(run)
                };
                took
            }
            Phase::Done => {
                self.tuning.phase = Phase::Done;
                false
            }
        }
    }

    /// What to do first: switch to a remembered choice, start trials, or nothing.
    fn tune_start(&mut self, net: (usize, usize), src: (usize, usize)) -> Phase {
        // Not asked to tune (`?tune=0`): the default, as the CLI's `--no-tune`.
        if self.frames < SHOWN_FIRST || !self.tuning.enabled {
            return Phase::Idle;
        }
        let key = TuneKey::new(&self.gpu, net);
        let remembered = self.tuning.cache.get(&key).map(|(c, _)| c);
        let running = self.segmenter.engine().config();
        // One choice per device: remembered at another size, it stands here too (on a slow
        // device trials take minutes).
        if self.tuning.chosen == Chosen::Remembered && remembered.is_none() {
            return Phase::Done;
        }
        if let Some(config) = remembered {
            if config == running {
                self.tuning.chosen = Chosen::Remembered;
                return Phase::Done;
            }
            return Phase::Switching(Box::new(self.candidate(config)));
        }
        let candidates = tune::candidates(tune::Abilities::of(&self.gpu));
        Phase::Trials(Box::new(Run {
            key,
            net,
            src,
            trials: Trials::leads_first(
                &candidates,
                ROUNDS,
                (running.threads, running.tile_pixels),
                WITHIN,
            ),
            warming: None,
            costs: HashMap::new(),
            current: None,
            best: None,
            result: Default::default(),
            wall: Default::default(),
            awaiting: false,
            trial_last: false,
            started_ms: now_ms(),
        }))
    }

    /// A candidate whose pipelines start compiling in the background now; the configuration
    /// running now shares its engine, compiled already.
    fn candidate(&self, config: Config) -> Candidate {
        let running = self.segmenter.engine();
        let (warm, segmenter) = if config == running.config() {
            let ready = Rc::new(RefCell::new(Warm::Ready(now_ms())));
            (ready, Some(Segmenter::from_engine(running.clone())))
        } else {
            let specs = pipeline_specs(&self.model.graph, config);
            (warm(&self.gpu.device, config.precision, &specs), None)
        };
        let since = now_ms();
        Candidate {
            config,
            warm,
            compiled_at: segmenter.is_some().then_some(since),
            segmenter,
            warmed_up: false,
            since,
            build_ms: None,
            first_frame_ms: None,
        }
    }

    /// Builds `c`'s engine once its pipelines are compiled, or reports why it cannot run.
    fn build(&self, c: &mut Candidate) -> Result<bool, String> {
        if c.segmenter.is_some() {
            return Ok(true);
        }
        let warm = c.warm.borrow().clone();
        match warm {
            Warm::Pending => Ok(false),
            Warm::Failed(e) => Err(e),
            Warm::Ready(compiled) => {
                c.compiled_at = Some(compiled);
                let start = now_ms();
                let s = Segmenter::with_config(&self.gpu, &self.model, c.config)
                    .map_err(|e| e.to_string())?;
                c.segmenter = Some(s);
                c.build_ms = Some(now_ms() - start);
                web_sys::console::info_1(
                    &format!(
                        "tuning: {} compiled in the background in {:.0} ms, engine built in {:.0} ms",
                        c.config.name(),
                        compiled - c.since,
                        now_ms() - start
                    )
                    .into(),
                );
                Ok(true)
            }
        }
    }

    /// A remembered configuration: runs it once it is built.
    fn switch_step(&mut self, mut c: Candidate) -> Phase {
        match self.build(&mut c) {
            Ok(false) => Phase::Switching(Box::new(c)),
            Ok(true) => {
                self.use_segmenter(c.segmenter.expect("built"));
                self.tuning.chosen = Chosen::Remembered;
                Phase::Done
            }
            Err(e) => {
                // The default runs; trials may find what does.
                self.tuning.note = Some(format!("{}: {e}", c.config.name()));
                self.tuning.cache = TuneCache::default();
                Phase::Idle
            }
        }
    }

    /// From now on frames run on `segmenter`.
    fn use_segmenter(&mut self, segmenter: Segmenter) {
        self.segmenter = segmenter;
        self.binding = None;
    }

    /// One step of the trials; true when a trial frame took this slot.
    fn trial_step(&mut self, run: &mut Run, source: &wgpu::ExternalImageSource) -> bool {
        if run.awaiting {
            let Some(ms) = run.result.take() else {
                return false;
            };
            let ms = if ms.is_nan() {
                run.wall.take().unwrap_or(ms)
            } else {
                ms
            };
            run.awaiting = false;
            run.trials.record(Ok(ms));
        }
        if run.trial_last {
            run.trial_last = false;
            return false;
        }
        let Some(config) = run.trials.next() else {
            self.keep_if_best(run);
            return false;
        };
        if run.current.as_ref().is_none_or(|c| c.config != config) {
            self.keep_if_best(run);
            run.current = Some(match run.warming.take() {
                Some(c) if c.config == config => c,
                _ => self.candidate(config),
            });
        }
        let c = run.current.as_mut().expect("set above");
        match self.build(c) {
            Ok(false) => return false,
            Ok(true) => {
                if run.warming.is_none()
                    && let Some(next) = run.trials.next_other()
                {
                    run.warming = Some(self.candidate(next));
                }
            }
            Err(e) => {
                run.trials.record(Err(e));
                run.current = None;
                return false;
            }
        }
        let segmenter = c.segmenter.as_mut().expect("built");
        let plan = match segmenter.plan(run.net, run.src) {
            Ok(None) => return false,
            Ok(Some(p)) => p,
            Err(e) => {
                run.trials.record(Err(e.to_string()));
                run.current = None;
                return false;
            }
        };
        // The camera's own frame: what the trial times is what the page runs.
        super::frame::copy_into(&self.gpu.queue, plan, run.src, source.clone());
        let timed = c.warmed_up;
        if timed && c.first_frame_ms.is_none() {
            // Its first frame waited for any pipeline not compiled yet.
            c.first_frame_ms = run.wall.take();
            let compile = c.compiled_at.unwrap_or(f64::NAN) - c.since;
            run.costs
                .insert(config, (compile, c.first_frame_ms.unwrap_or(f64::NAN)));
            web_sys::console::info_1(
                &format!(
                    "tuning: {} first frame {:.0} ms",
                    config.name(),
                    c.first_frame_ms.unwrap_or(f64::NAN)
                )
                .into(),
            );
        }
        let timing = if timed && plan.has_timestamps() && !plan.timings_pending() {
            Timing::Frame
        } else {
            Timing::Off
        };
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        plan.encode(
            &mut encoder,
            FrameOptions {
                read_classes: false,
                timing,
            },
        );
        self.in_flight.store(true, Relaxed);
        let start = now_ms();
        self.gpu.queue.submit([encoder.finish()]);
        let (in_flight, wall, result) =
            (self.in_flight.clone(), run.wall.clone(), run.result.clone());
        let wall_only = timing == Timing::Off;
        self.gpu.queue.on_submitted_work_done(move || {
            in_flight.store(false, Relaxed);
            wall.set(now_ms() - start);
            if wall_only {
                result.set(f64::NAN);
            }
        });
        if !wall_only {
            let result = run.result.clone();
            if !plan.request_timings(move |t| result.set(t.first().map_or(f64::NAN, |s| s.ms))) {
                run.result.set(f64::NAN);
            }
        }
        if timed {
            run.awaiting = true;
        } else {
            c.warmed_up = true;
        }
        run.trial_last = true;
        true
    }

    /// The candidate just timed is kept built if it is the fastest so far, else dropped (on a
    /// phone, memory for more than a few engines is not there).
    fn keep_if_best(&self, run: &mut Run) {
        let Some(c) = run.current.take() else {
            return;
        };
        let Some(segmenter) = c.segmenter else {
            return;
        };
        let (table, _) = run.trials.result();
        let Some(Ok(ms)) = table
            .iter()
            .find(|t| t.config == c.config)
            .map(|t| t.ms.clone())
        else {
            return;
        };
        if run.best.as_ref().is_none_or(|(_, best, _)| ms < *best) {
            run.best = Some((c.config, ms, segmenter));
        }
    }

    /// The trials are over: the fastest runs from now on and is remembered.
    fn finish(&mut self, mut run: Run) {
        self.keep_if_best(&mut run);
        let (table, best) = run.trials.result();
        self.tuning.table = table;
        self.tuning.costs = std::mem::take(&mut run.costs);
        self.tuning.took_ms = Some(now_ms() - run.started_ms);
        let Some((config, ms, segmenter)) = run.best else {
            self.tuning.note = Some("no configuration could be timed; the default runs".into());
            return;
        };
        debug_assert_eq!(Some(config), best);
        if config != self.segmenter.engine().config() {
            self.use_segmenter(segmenter);
        }
        self.tuning.chosen = Chosen::Measured;
        self.tuning.cache.insert(run.key, config, ms);
        self.tuning.unsaved = true;
    }
}
