//! The CPU engine: the same graph as the GPU engine, for machines and browsers without a
//! usable GPU. Activations are NHWC (a pixel's channels side by side, what SIMD wants),
//! convolutions run a register-blocked kernel per instruction set ([`simd::Isa`]), rows go to
//! threads natively, and a plan allocates everything once so a frame allocates nothing.
//! The kernels' plain twins (`kernels::twin`) stay the reference the tests hold this to.

#![allow(unsafe_code)]

pub mod conv;
pub mod ops;
pub mod simd;

use std::ops::Range;

use crate::kernels::upscale::{self, Upscale};
use crate::model::graph::{DType, Graph, Op, Shape};
use crate::model::{Model, Normalization};
use crate::runtime::EngineError;
use crate::segment::ClassMap;
use conv::{ConvArgs, Packed};
pub use simd::Isa;

/// Threads that share a step's rows: a rayon pool natively, the calling thread in wasm.
struct Workers {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    pool: Option<rayon::ThreadPool>,
}

impl Workers {
    fn new(threads: usize) -> Result<Workers, EngineError> {
        let threads = threads.max(1);
        #[cfg(not(target_arch = "wasm32"))]
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("enet-cpu-{i}"))
                    .build()
                    .map_err(|e| {
                        EngineError::Cpu(format!("cannot start {threads} threads: {e}"))
                    })?,
            )
        } else {
            None
        };
        // The page's worker is one thread (see the README on why not more).
        #[cfg(target_arch = "wasm32")]
        let threads = threads.min(1);
        Ok(Workers {
            threads,
            #[cfg(not(target_arch = "wasm32"))]
            pool,
        })
    }

    /// Calls `f` on contiguous parts of `0..n` that together cover it, in parallel.
    fn rows(&self, n: usize, f: impl Fn(Range<usize>) + Sync + Send) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = &self.pool {
            use rayon::prelude::*;
            // A few parts per thread even out rows of unequal cost.
            let parts = n.min(self.threads * 4).max(1);
            pool.install(|| {
                (0..parts)
                    .into_par_iter()
                    .for_each(|i| f(i * n / parts..(i + 1) * n / parts))
            });
            return;
        }
        f(0..n)
    }
}

/// Milliseconds of a monotonic clock: natively the OS's, in wasm the host's
/// `performance.now()` (a page, a worker or Node), else `Date.now()`.
pub fn now_ms() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1e3
    }
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
            .map_or_else(js_sys::Date::now, |p| p.now())
    }
}

/// The default thread count: every core the OS gives this process.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A pointer into one of a plan's buffers, shared with the threads that write disjoint rows.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
// SAFETY: every step writes disjoint rows from each thread, and reads only what earlier
// steps finished.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    /// Rows `rows` of `row_len` elements, as a slice.
    ///
    /// # Safety
    /// The rows must lie in the buffer, and no one else may use them meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, row_len: usize, rows: &Range<usize>) -> &mut [T] {
        unsafe {
            std::slice::from_raw_parts_mut(self.0.add(rows.start * row_len), rows.len() * row_len)
        }
    }

    fn get(self) -> *mut T {
        self.0
    }
}

/// A model compiled for this CPU: weights packed for its instruction set.
pub struct CpuEngine {
    graph: Graph,
    packed: Vec<Option<Packed>>,
    normalization: Normalization,
    isa: Isa,
    workers: Workers,
}

impl CpuEngine {
    /// The engine on `threads` threads (`None`: every core), with the best instructions
    /// this CPU has.
    pub fn new(
        graph: &Graph,
        normalization: Normalization,
        threads: Option<usize>,
    ) -> Result<CpuEngine, EngineError> {
        CpuEngine::with_isa(graph, normalization, threads, Isa::detect())
    }

    /// As [`CpuEngine::new`] with the instruction set chosen (tests compare them).
    pub fn with_isa(
        graph: &Graph,
        normalization: Normalization,
        threads: Option<usize>,
        isa: Isa,
    ) -> Result<CpuEngine, EngineError> {
        let threads = threads.unwrap_or_else(default_threads);
        if threads == 0 {
            return Err(EngineError::Cpu(
                "the thread count must be at least 1".into(),
            ));
        }
        let isa = if isa == Isa::detect() {
            isa
        } else {
            Isa::Portable
        };
        let mut packed = Vec::with_capacity(graph.ops.len());
        for (i, op) in graph.ops.iter().enumerate() {
            let (conv, post) = match op {
                Op::Initial { conv, .. } => (conv, None),
                Op::Conv { conv, residual, .. } => {
                    (conv, residual.as_ref().map(|r| r.slope.as_slice()))
                }
                _ => {
                    packed.push(None);
                    continue;
                }
            };
            let p = Packed::new(conv, post, isa).ok_or_else(|| {
                EngineError::Cpu(format!(
                    "op {i} ({}) has a {}x{} kernel; the CPU engine takes up to {}",
                    graph.name(i).unwrap_or(op.kind()),
                    conv.geom.kernel[0],
                    conv.geom.kernel[1],
                    conv::MAX_K
                ))
            })?;
            packed.push(Some(p));
        }
        Ok(CpuEngine {
            graph: graph.clone(),
            packed,
            normalization,
            isa,
            workers: Workers::new(threads)?,
        })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn threads(&self) -> usize {
        self.workers.threads
    }

    /// E.g. "CPU (AVX2+FMA, 2 threads)".
    pub fn describe(&self) -> String {
        let t = self.threads();
        format!(
            "CPU ({}, {t} thread{})",
            self.isa.name(),
            if t == 1 { "" } else { "s" }
        )
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Buffers for a network input of `net` fed from RGBA frames of `source`, allocated
    /// once; a size too small for the network or too large for memory is an error.
    pub fn plan(
        &self,
        net: (usize, usize),
        source: (usize, usize),
    ) -> Result<CpuPlan, EngineError> {
        let (w, h) = net;
        let size_err = |reason: String| EngineError::Size { w, h, reason };
        if w == 0 || h == 0 || source.0 == 0 || source.1 == 0 {
            return Err(size_err(format!(
                "sizes must be positive (source frame {}x{})",
                source.0, source.1
            )));
        }
        let shapes = self
            .graph
            .shapes(h, w)
            .map_err(|e| size_err(e.to_string()))?;
        // Buffers are shared by tensors whose lives do not overlap, as on the GPU.
        let last = self.graph.last_use();
        let mut slot = vec![usize::MAX; shapes.len()];
        let mut sizes: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut idx_sizes: Vec<usize> = Vec::new();
        let take = |len: usize, sizes: &mut Vec<usize>, free: &mut Vec<usize>| {
            // The smallest free buffer that fits, else the largest grown, else a new one.
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, b)| sizes[**b] >= len)
                .min_by_key(|(_, b)| sizes[**b])
                .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| sizes[**b]))
                .map(|(i, _)| i);
            match fit {
                Some(i) => {
                    let b = free.swap_remove(i);
                    sizes[b] = sizes[b].max(len);
                    b
                }
                None => {
                    sizes.push(len);
                    sizes.len() - 1
                }
            }
        };
        slot[0] = take(shapes[0].len(), &mut sizes, &mut free);
        for (i, op) in self.graph.ops.iter().enumerate() {
            for t in op.outputs() {
                slot[t] = match self.graph.tensors[t].dtype {
                    DType::F32 => take(shapes[t].len(), &mut sizes, &mut free),
                    DType::U32 => {
                        idx_sizes.push(shapes[t].len());
                        idx_sizes.len() - 1
                    }
                };
            }
            for t in op.inputs() {
                if last[t] == Some(i)
                    && t != self.graph.output
                    && self.graph.tensors[t].dtype == DType::F32
                {
                    free.push(slot[t]);
                }
            }
        }
        let bytes = (sizes.iter().sum::<usize>() + idx_sizes.iter().sum::<usize>()) * 4;
        let oom = || EngineError::OutOfMemory {
            w,
            h,
            mib: (bytes as u64).div_ceil(1 << 20),
        };
        let alloc_f32 = |len: usize| -> Result<Vec<f32>, EngineError> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| oom())?;
            v.resize(len, 0.0);
            Ok(v)
        };
        let mut bufs = Vec::with_capacity(sizes.len());
        for &len in &sizes {
            bufs.push(alloc_f32(len)?);
        }
        let mut idx = Vec::with_capacity(idx_sizes.len());
        for &len in &idx_sizes {
            let mut v: Vec<u32> = Vec::new();
            v.try_reserve_exact(len).map_err(|_| oom())?;
            v.resize(len, 0);
            idx.push(v);
        }
        let max_cin = self
            .packed
            .iter()
            .flatten()
            .map(|p| p.cin)
            .max()
            .unwrap_or(0);
        let out = shapes[self.graph.output];
        Ok(CpuPlan {
            net,
            source,
            xt: ops::taps(source.0, w),
            yt: ops::taps(source.1, h),
            zero: vec![0.0; max_cin],
            classes: vec![0; out.h * out.w],
            shapes,
            slot,
            bufs,
            idx,
            bytes,
        })
    }

    /// Runs one RGBA8 frame of the plan's source size through the network.
    pub fn run(&self, plan: &mut CpuPlan, rgba: &[u8]) -> Result<(), EngineError> {
        self.run_timed(plan, rgba, None)
    }

    /// Labels of what [`CpuEngine::run_timed`] times: the preprocessing, each op, the argmax.
    pub fn step_labels(&self) -> Vec<String> {
        let mut v = vec!["preprocess".to_string()];
        for (i, op) in self.graph.ops.iter().enumerate() {
            v.push(format!(
                "{} {}",
                self.graph.name(i).unwrap_or(""),
                op.kind()
            ));
        }
        v.push("argmax".into());
        v
    }

    /// [`CpuEngine::run`], adding each step's milliseconds to `times` (as
    /// [`CpuEngine::step_labels`] names them) when given.
    pub fn run_timed(
        &self,
        plan: &mut CpuPlan,
        rgba: &[u8],
        mut times: Option<&mut [f64]>,
    ) -> Result<(), EngineError> {
        let mut clock = now_ms();
        let mut lap = |i: usize| {
            if let Some(t) = times.as_deref_mut() {
                let now = now_ms();
                t[i] += now - clock;
                clock = now;
            }
        };
        let sw = plan.source.0;
        crate::runtime::check_rgba(rgba, plan.source)?;
        let (w, h) = plan.net;
        let plan = &mut *plan;
        let ptr = |plan: &mut CpuPlan, t: usize| Ptr(plan.bufs[plan.slot[t]].as_mut_ptr());
        let input = ptr(plan, 0);
        {
            let plan = &*plan;
            let norm = &self.normalization;
            self.workers.rows(h, |r| {
                // SAFETY: each part writes its own rows of tensor 0.
                let out = unsafe { input.rows(w * 3, &r) };
                ops::preprocess(rgba, sw, &plan.xt, &plan.yt, norm, out, r);
            });
        }
        lap(0);
        for (i, op) in self.graph.ops.iter().enumerate() {
            match op {
                Op::Initial {
                    input,
                    output,
                    conv,
                    pool_kernel,
                    pool_pad,
                    pool_scale,
                    pool_shift,
                    pool_slope,
                } => {
                    let (src, dst) = (ptr(plan, *input), ptr(plan, *output));
                    let (si, so) = (plan.shapes[*input], plan.shapes[*output]);
                    let p = self.packed[i].as_ref().expect("packed for every conv");
                    let args = self.conv_args(plan, p, src, si, dst, so, None);
                    let stride = conv.geom.stride[0];
                    self.workers.rows(so.h, |r| {
                        // SAFETY: each part computes and writes its own output rows.
                        unsafe { conv::conv_rows(self.isa, &args, r.clone()) };
                        let input = unsafe { std::slice::from_raw_parts(src.get(), si.len()) };
                        let out = unsafe { dst.rows(so.w * so.c, &r) };
                        ops::initial_pool(
                            input,
                            (si.h, si.w, si.c),
                            (*pool_kernel, *pool_pad, stride),
                            (pool_scale, pool_shift, pool_slope),
                            out,
                            (so.w, so.c, conv.cout),
                            r,
                        );
                    });
                }
                Op::Conv {
                    input,
                    output,
                    residual,
                    ..
                } => {
                    let (src, dst) = (ptr(plan, *input), ptr(plan, *output));
                    let (si, so) = (plan.shapes[*input], plan.shapes[*output]);
                    let res = residual
                        .as_ref()
                        .map(|r| (ptr(plan, r.tensor), plan.shapes[r.tensor].c));
                    let p = self.packed[i].as_ref().expect("packed for every conv");
                    let args = self.conv_args(plan, p, src, si, dst, so, res);
                    self.workers.rows(so.h, |r| {
                        // SAFETY: each part computes and writes its own output rows.
                        unsafe { conv::conv_rows(self.isa, &args, r) };
                    });
                }
                Op::MaxPool {
                    input,
                    output,
                    indices,
                } => {
                    let (src, dst) = (ptr(plan, *input), ptr(plan, *output));
                    let idx = Ptr(plan.idx[plan.slot[*indices]].as_mut_ptr());
                    let (si, so) = (plan.shapes[*input], plan.shapes[*output]);
                    self.workers.rows(so.h, |r| {
                        // SAFETY: the input is complete; each part writes its own rows.
                        let input = unsafe { std::slice::from_raw_parts(src.get(), si.len()) };
                        let (out, ix) =
                            unsafe { (dst.rows(so.w * so.c, &r), idx.rows(so.w * so.c, &r)) };
                        ops::maxpool(input, (si.w, si.c), out, ix, r);
                    });
                }
                Op::Unpool {
                    input,
                    indices,
                    output,
                    ..
                } => {
                    let (src, dst) = (ptr(plan, *input), ptr(plan, *output));
                    let idx = Ptr(plan.idx[plan.slot[*indices]].as_mut_ptr());
                    let (si, so) = (plan.shapes[*input], plan.shapes[*output]);
                    let row = so.w * so.c;
                    self.workers.rows(si.h, |r| {
                        // SAFETY: input rows r scatter only into output rows 2r (their
                        // pooling windows).
                        let (input, ix) =
                            unsafe { (src.rows(si.w * si.c, &r), idx.rows(si.w * si.c, &r)) };
                        let out_rows = 2 * r.start..2 * r.end;
                        let out = unsafe { dst.rows(row, &out_rows) };
                        ops::unpool(input, ix, so.c, out, out_rows.start * so.w);
                    });
                    // An odd last row had no window: zero.
                    let tail = 2 * si.h..so.h;
                    unsafe { dst.rows(row, &tail) }.fill(0.0);
                }
            }
            lap(i + 1);
        }
        let out = plan.shapes[self.graph.output];
        let logits = &plan.bufs[plan.slot[self.graph.output]][..out.len()];
        ops::argmax(logits, out.c, &mut plan.classes);
        lap(self.graph.ops.len() + 1);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_args<'a>(
        &self,
        plan: &CpuPlan,
        p: &'a Packed,
        src: Ptr<f32>,
        si: Shape,
        dst: Ptr<f32>,
        so: Shape,
        res: Option<(Ptr<f32>, usize)>,
    ) -> ConvArgs<'a> {
        ConvArgs {
            p,
            input: src.get(),
            ih: si.h,
            iw: si.w,
            out: dst.get(),
            oh: so.h,
            ow: so.w,
            ostride: so.c,
            ooff: 0,
            res: res.map_or(std::ptr::null(), |(r, _)| r.get()),
            res_c: res.map_or(0, |(_, c)| c),
            zero: plan.zero.as_ptr(),
        }
    }
}

/// Everything one network size needs, allocated once.
pub struct CpuPlan {
    net: (usize, usize),
    source: (usize, usize),
    xt: Vec<(u32, u32, f32)>,
    yt: Vec<(u32, u32, f32)>,
    zero: Vec<f32>,
    classes: Vec<u8>,
    shapes: Vec<Shape>,
    /// Tensor -> index into `bufs` (f32) or `idx` (pool indices).
    slot: Vec<usize>,
    bufs: Vec<Vec<f32>>,
    idx: Vec<Vec<u32>>,
    bytes: usize,
}

impl CpuPlan {
    pub fn net_size(&self) -> (usize, usize) {
        self.net
    }

    pub fn source_size(&self) -> (usize, usize) {
        self.source
    }

    /// Bytes of activations and indices.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// The last frame's class per pixel, row-major at the network size.
    pub fn classes(&self) -> &[u8] {
        &self.classes
    }

    /// The last frame's logits as the engine holds them: NHWC.
    pub fn logits_nhwc(&self, graph: &Graph) -> &[f32] {
        &self.bufs[self.slot[graph.output]][..self.shapes[graph.output].len()]
    }

    /// The last frame's logits, planar (`classes x h x w`, as PyTorch and the GPU give them).
    pub fn logits(&self, graph: &Graph) -> Vec<f32> {
        let s = self.shapes[graph.output];
        let nhwc = &self.bufs[self.slot[graph.output]];
        let hw = s.h * s.w;
        let mut out = vec![0.0; s.len()];
        for p in 0..hw {
            for c in 0..s.c {
                out[c * hw + p] = nhwc[p * s.c + c];
            }
        }
        out
    }
}

/// Class maps hold a class index per byte.
fn check_classes(model: &Model) -> Result<(), EngineError> {
    if model.num_classes() > 256 {
        return Err(EngineError::Cpu(format!(
            "{} classes: class maps hold at most 256",
            model.num_classes()
        )));
    }
    Ok(())
}

/// A model on the CPU with a plan cached for the last sizes: the CPU twin of
/// [`crate::Segmenter`], synchronous since nothing waits on a device.
pub struct CpuSegmenter {
    engine: CpuEngine,
    plan: Option<CpuPlan>,
}

impl CpuSegmenter {
    pub fn new(model: &Model, threads: Option<usize>) -> Result<CpuSegmenter, EngineError> {
        check_classes(model)?;
        Ok(CpuSegmenter {
            engine: CpuEngine::new(&model.graph, model.normalization, threads)?,
            plan: None,
        })
    }

    pub fn engine(&self) -> &CpuEngine {
        &self.engine
    }

    /// Runs a frame; the plan is made again only when the sizes change.
    pub fn run(
        &mut self,
        rgba: &[u8],
        source: (usize, usize),
        net: (usize, usize),
    ) -> Result<&CpuPlan, EngineError> {
        let reuse = matches!(&self.plan, Some(p) if p.net == net && p.source == source);
        if !reuse {
            self.plan = None;
            self.plan = Some(self.engine.plan(net, source)?);
        }
        let plan = self.plan.as_mut().expect("made above");
        self.engine.run(plan, rgba)?;
        Ok(plan)
    }

    /// Segments one RGBA8 frame of `w` x `h` at network size `net`; the class map is at `net`.
    pub fn segment(
        &mut self,
        rgba: &[u8],
        w: usize,
        h: usize,
        net: (usize, usize),
    ) -> Result<ClassMap, EngineError> {
        let plan = self.run(rgba, (w, h), net)?;
        Ok(ClassMap {
            width: net.0,
            height: net.1,
            data: plan.classes().to_vec(),
        })
    }

    /// As [`crate::Segmenter::segment_to`]: the classes brought to `out` by `mode`, guided
    /// by the frame for [`Upscale::Edge`].
    pub fn segment_to(
        &mut self,
        rgba: &[u8],
        (w, h): (usize, usize),
        net: (usize, usize),
        out: (usize, usize),
        mode: Upscale,
    ) -> Result<ClassMap, EngineError> {
        crate::segment::check_output(out)?;
        self.run(rgba, (w, h), net)?;
        let plan = self.plan.as_ref().expect("made by run");
        let sizes = upscale::Sizes {
            net,
            src: (w, h),
            out,
            channels: self.engine.graph.num_classes(),
        };
        let data = if !sizes.upscales() || mode == Upscale::Nearest {
            ClassMap {
                width: net.0,
                height: net.1,
                data: plan.classes().to_vec(),
            }
            .resize_nearest(out.0, out.1)
            .data
        } else {
            let logits = plan.logits(&self.engine.graph);
            let mut probs = upscale::softmax(&logits, sizes.channels, net.0 * net.1);
            if crate::kernels::refine::applies(mode, net, out) {
                probs = crate::kernels::refine::refine(&probs, rgba, sizes);
            }
            upscale::upscale(&probs, rgba, sizes, mode)
        };
        Ok(ClassMap {
            width: out.0,
            height: out.1,
            data,
        })
    }

    /// Runs one frame and returns the logits (`classes x h x w`), for tests and tools.
    pub fn logits(
        &mut self,
        rgba: &[u8],
        w: usize,
        h: usize,
        net: (usize, usize),
    ) -> Result<Vec<f32>, EngineError> {
        self.run(rgba, (w, h), net)?;
        let plan = self.plan.as_ref().expect("made by run");
        Ok(plan.logits(&self.engine.graph))
    }
}
