//! The model description: which layers, their shapes, and the weights that fill them.

pub mod enet;
pub mod graph;
pub mod import;
pub mod weights;

pub use enet::{Layout, ParamSpec, expected_params};
pub use graph::{Graph, Op, Shape, TensorId};
pub use weights::{ClassInfo, Model, Normalization};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("not a safetensors file: {0}")]
    NotSafetensors(String),
    #[error("weights metadata: {0}")]
    Metadata(String),
    #[error("tensor {0:?} is missing")]
    Missing(String),
    #[error("tensor {0:?} is not part of a {1} ENet (unexpected extra tensor)")]
    Extra(String, String),
    #[error("tensor {tensor:?} has shape {got:?}, expected {want:?}")]
    Shape {
        tensor: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tensor {tensor:?} has dtype {dtype}, expected F32 or F16")]
    DType { tensor: String, dtype: String },
    #[error("tensor {tensor:?}: {problem}")]
    BadValue { tensor: String, problem: String },
    #[error("the metadata lists {metadata} classes but tensor {tensor:?} has {weights} outputs")]
    ClassCount {
        metadata: usize,
        weights: usize,
        tensor: String,
    },
}
