//! GPU timestamps: a frame's compute pass timed as a whole, or each dispatch in a pass of
//! its own; read back blocking (benchmarks) or without blocking (the page's timing panel).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use super::Plan;
use crate::runtime::{EngineError, Gpu};

/// Which timestamps a frame records (needs `TIMESTAMP_QUERY`; ignored without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    #[default]
    Off,
    /// Start and end of the frame's compute pass.
    Frame,
    /// One compute pass per dispatch, each timed: per-kernel cost, at some overhead.
    PerDispatch,
}

/// GPU time of one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTiming {
    pub label: String,
    pub ms: f64,
}

pub(super) struct Timestamps {
    pub(super) set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f32,
    /// A non-blocking readback is in flight (the readback buffer is mapped or mapping).
    pub(super) pending: Arc<AtomicBool>,
}

impl Timestamps {
    /// Room for `count` timestamps (two per timed pass).
    pub(super) fn new(gpu: &Gpu, count: u32) -> Timestamps {
        let device = &gpu.device;
        let bytes = count as u64 * 8;
        Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            period_ns: gpu.queue.get_timestamp_period(),
            pending: Default::default(),
        }
    }

    /// Records the copy of the first `queries` timestamps to where they are read back.
    pub(super) fn encode_readback(&self, encoder: &mut wgpu::CommandEncoder, queries: u32) {
        encoder.resolve_query_set(&self.set, 0..queries, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, queries as u64 * 8);
    }

    /// Milliseconds between two ticks.
    fn ms(&self, from: u64, to: u64) -> f64 {
        ticks_ms(self.period_ns as f64, from, to)
    }
}

fn ticks_ms(period_ns: f64, from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 * period_ns / 1e6
}

impl Plan {
    /// GPU times of the last frame submitted with timing on: one entry for
    /// [`Timing::Frame`], one per dispatch for [`Timing::PerDispatch`].
    pub async fn read_timings(&self) -> Result<Vec<StageTiming>, EngineError> {
        let Some(t) = &self.timestamps else {
            return Ok(Vec::new());
        };
        let timing = self.last_timing.get();
        if timing == Timing::Off {
            return Ok(Vec::new());
        }
        let bytes = self.gpu.read_buffer(&t.readback).await?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        Ok(match timing {
            Timing::Frame => vec![StageTiming {
                label: "frame".into(),
                ms: t.ms(ticks[0], ticks[1]),
            }],
            _ => self
                .dispatches
                .iter()
                .enumerate()
                .map(|(i, d)| StageTiming {
                    label: d.label.clone(),
                    ms: t.ms(ticks[2 * i], ticks[2 * i + 1]),
                })
                .collect(),
        })
    }

    /// Starts reading the timings of the frame just submitted without blocking; `done` gets
    /// them once the GPU has finished (the browser's event loop, or the next device poll).
    /// Returns false, recording nothing, while an earlier request is still pending or when
    /// timing was off.
    pub fn request_timings(
        &self,
        done: impl FnOnce(Vec<StageTiming>) + wgpu::WasmNotSend + 'static,
    ) -> bool {
        let Some(t) = &self.timestamps else {
            return false;
        };
        let timing = self.last_timing.get();
        if timing == Timing::Off || t.pending.load(Relaxed) {
            return false;
        }
        t.pending.store(true, Relaxed);
        let buffer = t.readback.clone();
        let pending = t.pending.clone();
        let period = t.period_ns as f64;
        let labels: Vec<String> = match timing {
            Timing::PerDispatch => self.dispatches.iter().map(|d| d.label.clone()).collect(),
            _ => vec!["frame".into()],
        };
        let slice_buffer = buffer.clone();
        slice_buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let mut out = Vec::new();
            if r.is_ok() {
                if let Ok(view) = buffer.get_mapped_range(..) {
                    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
                    for (i, label) in labels.into_iter().enumerate() {
                        let ms = ticks_ms(period, ticks[2 * i], ticks[2 * i + 1]);
                        out.push(StageTiming { label, ms });
                    }
                }
                buffer.unmap();
            }
            pending.store(false, Relaxed);
            done(out);
        });
        true
    }

    /// Whether timings requested with [`Plan::request_timings`] are still on their way; a
    /// frame must not record timestamps meanwhile.
    pub fn timings_pending(&self) -> bool {
        self.timestamps
            .as_ref()
            .is_some_and(|t| t.pending.load(Relaxed))
    }
}
