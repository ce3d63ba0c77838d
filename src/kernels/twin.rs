//! The plain-Rust twins of the WGSL kernels, written for clarity rather than speed, and the
//! whole network run on them. Each kernel's twin lives in its own module, beside its host
//! side; here are the tensor they share and the network run, and every twin under one name
//! for the tests, which hold every shader and the whole GPU network (and the CPU engine)
//! against these.

use crate::model::graph::{DType, Graph, Op, Shape};

pub use super::argmax::argmax;
pub use super::conv::conv;
pub use super::initial_block::initial;
pub use super::overlay::{
    Compose, Shown, View, class_pixel_at, compose, nearest_index, overlay, view_column,
};
pub use super::pool::{maxpool, unpool};
pub use super::preprocess::{bilinear_tap, preprocess};
pub use super::smooth::smooth;

/// A dense `C x H x W` f32 tensor (batch 1, NCHW as PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: Shape) -> Self {
        Tensor {
            shape,
            data: vec![0.0; shape.len()],
        }
    }

    pub(crate) fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.shape.h + y) * self.shape.w + x]
    }
}

pub(crate) fn prelu(v: f32, slope: f32) -> f32 {
    if v >= 0.0 { v } else { v * slope }
}

enum Value {
    F32(Tensor),
    U32(Vec<u32>),
    Empty,
}

/// Runs the whole graph; returns the output tensor (logits).
pub fn run(graph: &Graph, input: Tensor) -> Tensor {
    let shapes = graph
        .shapes(input.shape.h, input.shape.w)
        .expect("input large enough for the graph");
    let last = graph.last_use();
    let mut vals: Vec<Value> = (0..graph.tensors.len()).map(|_| Value::Empty).collect();
    vals[0] = Value::F32(input);
    for (i, op) in graph.ops.iter().enumerate() {
        let produced: Vec<(usize, Value)> = {
            let get = |t: usize| match &vals[t] {
                Value::F32(x) => x,
                _ => panic!("tensor {t} is not a live f32 tensor"),
            };
            match op {
                Op::Initial {
                    input,
                    output,
                    conv: c,
                    pool_kernel,
                    pool_pad,
                    pool_scale,
                    pool_shift,
                    pool_slope,
                } => {
                    let r = initial(
                        get(*input),
                        c,
                        *pool_kernel,
                        *pool_pad,
                        pool_scale,
                        pool_shift,
                        pool_slope,
                        shapes[*output],
                    );
                    vec![(*output, Value::F32(r))]
                }
                Op::Conv {
                    input,
                    output,
                    conv: c,
                    residual,
                } => {
                    let res = residual
                        .as_ref()
                        .map(|r| (get(r.tensor), r.slope.as_slice()));
                    vec![(
                        *output,
                        Value::F32(conv(get(*input), c, res, shapes[*output])),
                    )]
                }
                Op::MaxPool {
                    input,
                    output,
                    indices,
                } => {
                    let (o, idx) = maxpool(get(*input));
                    vec![(*output, Value::F32(o)), (*indices, Value::U32(idx))]
                }
                Op::Unpool {
                    input,
                    indices,
                    output,
                    ..
                } => {
                    let Value::U32(idx) = &vals[*indices] else {
                        panic!("indices tensor {indices} is not live")
                    };
                    vec![(
                        *output,
                        Value::F32(unpool(get(*input), idx, shapes[*output])),
                    )]
                }
            }
        };
        for (t, v) in produced {
            vals[t] = v;
        }
        for t in op.inputs() {
            if last[t] == Some(i) && t != graph.output {
                vals[t] = Value::Empty;
            }
        }
        debug_assert!(op.outputs().iter().all(|&t| match graph.tensors[t].dtype {
            DType::F32 => matches!(vals[t], Value::F32(_)),
            DType::U32 => matches!(vals[t], Value::U32(_)),
        }));
    }
    match std::mem::replace(&mut vals[graph.output], Value::Empty) {
        Value::F32(t) => t,
        _ => panic!("graph output is not an f32 tensor"),
    }
}
