//! Test and debugging access to a plan's tensors: written and read whole, the network run
//! on a written input. Allocates and blocks; never in the frame loop.

use super::{Plan, run};
use crate::kernels::{Precision, layout};
use crate::model::graph::TensorId;
use crate::runtime::EngineError;

impl Plan {
    /// Test and debugging access: overwrite a tensor (e.g. the network input).
    pub fn write_tensor(&self, t: TensorId, data: &[f32]) {
        assert_eq!(data.len(), self.shapes[t].len(), "tensor {t} length");
        // NaN in the padding channels: a kernel that took them for a channel would show.
        let data = &layout::pack(self.shapes[t], data, f32::NAN);
        let mut bytes: Vec<u8> = match self.precision {
            Precision::F32 => bytemuck::cast_slice(data).to_vec(),
            Precision::F16 => data
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        bytes.resize(self.bytes(t) as usize, 0);
        self.gpu
            .queue
            .write_buffer(&self.buffers[self.tensor_buffer[t]], 0, &bytes);
    }

    /// Test and debugging access: runs the network ops only (no preprocess) on whatever
    /// tensor 0 holds.
    pub fn submit_ops_only(&self) -> wgpu::SubmissionIndex {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // The first dispatch preprocesses the frame, or reads it for the initial block:
            // then `tensor_entry` is that block reading tensor 0. The argmax, where it is a
            // dispatch of its own, is left out.
            if let Some(entry) = &self.tensor_entry {
                run(&mut pass, entry);
            }
            let end = self.dispatches.len() - !self.argmax_folded as usize;
            for d in &self.dispatches[1..end] {
                run(&mut pass, d);
            }
        }
        self.gpu.queue.submit([encoder.finish()])
    }

    /// Test and debugging access: reads a tensor's raw bytes back. Allocates; not for the
    /// frame loop.
    async fn read_tensor_bytes(&self, t: TensorId) -> Result<Vec<u8>, EngineError> {
        if self.tensor_buffer[t] == usize::MAX {
            return Err(EngineError::Gpu(format!(
                "tensor {t} lives only inside a fused dispatch; plan without fusion to read it"
            )));
        }
        let bytes = self.bytes(t);
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.buffers[self.tensor_buffer[t]], 0, &staging, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let mut raw = self.gpu.read_buffer(&staging).await?;
        raw.truncate(bytes as usize);
        Ok(raw)
    }

    /// Test and debugging access: an activation tensor's values (as f32 whatever the
    /// storage precision).
    pub async fn read_tensor(&self, t: TensorId) -> Result<Vec<f32>, EngineError> {
        let raw = self.read_tensor_bytes(t).await?;
        let shape = self.shapes[t];
        let n = layout::stored_len(shape);
        let stored: Vec<f32> = match self.precision {
            Precision::F32 => bytemuck::pod_collect_to_vec(&raw[..n * 4]),
            Precision::F16 => raw[..n * 2]
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(layout::unpack(shape, &stored))
    }

    /// Test and debugging access: a u32 tensor's values (max-pool indices).
    pub async fn read_indices(&self, t: TensorId) -> Result<Vec<u32>, EngineError> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.read_tensor_bytes(t).await?,
        ))
    }
}
