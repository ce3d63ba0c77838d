//! The project's weights file: safetensors with the layout, classes and normalisation in its
//! metadata, BatchNorm stored unfolded (folded here, at load time).

use std::collections::{HashMap, HashSet};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::enet::{self, Layout, ParamSource, ParamSpec};
use super::graph::Graph;

/// Metadata value of the `format` key.
pub const FORMAT: &str = "enet-wgpu";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub name: String,
    pub color: [u8; 3],
}

/// The 11 CamVid classes plus void, in the usual SegNet/ENet order.
pub fn camvid_classes() -> Vec<ClassInfo> {
    [
        ("sky", [128, 128, 128]),
        ("building", [128, 0, 0]),
        ("pole", [192, 192, 128]),
        ("road", [128, 64, 128]),
        ("pavement", [60, 40, 222]),
        ("tree", [128, 128, 0]),
        ("sign_symbol", [192, 128, 128]),
        ("fence", [64, 64, 128]),
        ("car", [64, 0, 128]),
        ("pedestrian", [64, 64, 0]),
        ("bicyclist", [0, 128, 192]),
        ("unlabeled", [0, 0, 0]),
    ]
    .into_iter()
    .map(|(name, color)| ClassInfo {
        name: name.to_string(),
        color,
    })
    .collect()
}

/// Input normalisation: `(byte / 255 - mean) / std` per RGB channel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
}

/// A loaded, validated model ready for the runtime or the CPU twin.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub layout: Layout,
    pub classes: Vec<ClassInfo>,
    /// Class that labels "no class": ignored by evaluation.
    pub void_class: Option<usize>,
    pub normalization: Normalization,
    /// Free text about how the weights were made.
    pub provenance: Option<String>,
    pub graph: Graph,
}

/// The metadata of a weights file, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub layout: Layout,
    pub classes: Vec<ClassInfo>,
    pub void_class: Option<usize>,
    pub normalization: Normalization,
    pub provenance: Option<String>,
}

impl Header {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("layout".into(), self.layout.name().into());
        m.insert(
            "classes".into(),
            serde_json::to_string(&self.classes).expect("serialisable"),
        );
        if let Some(v) = self.void_class {
            m.insert("void_class".into(), v.to_string());
        }
        m.insert(
            "normalization".into(),
            serde_json::to_string(&self.normalization).expect("serialisable"),
        );
        if let Some(p) = &self.provenance {
            m.insert("provenance".into(), p.clone());
        }
        m
    }

    pub fn from_metadata(m: Option<&HashMap<String, String>>) -> Result<Header, ModelError> {
        let empty = HashMap::new();
        let m = m.unwrap_or(&empty);
        let key = |k: &str| {
            m.get(k).ok_or_else(|| {
                ModelError::Metadata(format!(
                    "key {k:?} is missing; is this an {FORMAT} weights file? A PyTorch-ENet checkpoint converts with `enet import`"
                ))
            })
        };
        match key("format")?.as_str() {
            FORMAT => {}
            other => {
                return Err(ModelError::Metadata(format!(
                    "format is {other:?}, expected {FORMAT:?}"
                )));
            }
        }
        let layout = Layout::parse(key("layout")?)?;
        let classes: Vec<ClassInfo> = serde_json::from_str(key("classes")?)
            .map_err(|e| ModelError::Metadata(format!("classes: {e}")))?;
        if classes.is_empty() {
            return Err(ModelError::Metadata("classes: the list is empty".into()));
        }
        let void_class = match m.get("void_class") {
            None => None,
            Some(v) => {
                let i: usize = v.parse().map_err(|_| {
                    ModelError::Metadata(format!("void_class {v:?} is not an index"))
                })?;
                if i >= classes.len() {
                    return Err(ModelError::Metadata(format!(
                        "void_class {i} is out of range for {} classes",
                        classes.len()
                    )));
                }
                Some(i)
            }
        };
        let normalization: Normalization = serde_json::from_str(key("normalization")?)
            .map_err(|e| ModelError::Metadata(format!("normalization: {e}")))?;
        let n = normalization;
        if n.mean.iter().chain(&n.std).any(|v| !v.is_finite()) || n.std.iter().any(|&s| s <= 0.0) {
            return Err(ModelError::Metadata(format!(
                "normalization {n:?}: values must be finite and std positive"
            )));
        }
        Ok(Header {
            layout,
            classes,
            void_class,
            normalization,
            provenance: m.get("provenance").cloned(),
        })
    }
}

/// A named tensor to write.
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Serialises tensors (f32) and a header as an engine weights file.
pub fn write(header: &Header, tensors: &[RawTensor]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| bytemuck::cast_slice(&t.data).to_vec())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            (
                t.name.clone(),
                TensorView::new(Dtype::F32, t.shape.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    safetensors::serialize(views, Some(header.to_metadata())).expect("in-memory serialisation")
}

/// Reads one tensor as f32, checking shape, dtype and finiteness.
pub(crate) fn read_f32(
    st: &SafeTensors,
    name: &str,
    want: &[usize],
) -> Result<Vec<f32>, ModelError> {
    let view = st
        .tensor(name)
        .map_err(|_| ModelError::Missing(name.to_string()))?;
    if view.shape() != want {
        return Err(ModelError::Shape {
            tensor: name.to_string(),
            got: view.shape().to_vec(),
            want: want.to_vec(),
        });
    }
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::DType {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::BadValue {
            tensor: name.to_string(),
            problem: format!("value {} at flat index {i} is not finite", values[i]),
        });
    }
    Ok(values)
}

pub(crate) fn parse(bytes: &[u8]) -> Result<SafeTensors<'_>, ModelError> {
    SafeTensors::deserialize(bytes).map_err(|e| ModelError::NotSafetensors(e.to_string()))
}

pub(crate) fn metadata(bytes: &[u8]) -> Result<Option<HashMap<String, String>>, ModelError> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
    Ok(meta.metadata().clone())
}

struct FileSource<'a> {
    st: &'a SafeTensors<'a>,
    used: HashSet<String>,
}

impl ParamSource for FileSource<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        self.used.insert(name.to_string());
        read_f32(self.st, name, shape)
    }
}

impl Model {
    /// Loads and validates an engine weights file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Model, ModelError> {
        let st = parse(bytes)?;
        let header = Header::from_metadata(metadata(bytes)?.as_ref())?;
        let classes = header.classes.len();
        // Say "class count" rather than a bare shape mismatch when that is the problem.
        if let Ok(v) = st.tensor("fullconv.weight")
            && v.shape().len() == 4
            && v.shape()[1] != classes
        {
            return Err(ModelError::ClassCount {
                metadata: classes,
                weights: v.shape()[1],
                tensor: "fullconv.weight".into(),
            });
        }
        let mut src = FileSource {
            st: &st,
            used: HashSet::new(),
        };
        let graph = enet::build_graph(header.layout, classes, &mut src)?;
        let mut extra: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !src.used.contains(*n))
            .map(str::to_string)
            .collect();
        extra.sort();
        if let Some(name) = extra.into_iter().next() {
            return Err(ModelError::Extra(name, header.layout.name().into()));
        }
        Ok(Model {
            layout: header.layout,
            classes: header.classes,
            void_class: header.void_class,
            normalization: header.normalization,
            provenance: header.provenance,
            graph,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn parameter_count(&self) -> usize {
        expected_param_count(self.layout, self.num_classes())
    }
}

pub fn expected_param_count(layout: Layout, classes: usize) -> usize {
    enet::expected_params(layout, classes)
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

/// Deterministic pseudo-random numbers (SplitMix64): tests and benchmarks need reproducible
/// weights and inputs without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// Random but well-conditioned weights for `layout`: activations stay in a sane range
/// through the whole network, so comparisons between implementations are meaningful.
pub fn synthetic_tensors(layout: Layout, classes: usize, seed: u64) -> Vec<RawTensor> {
    let mut rng = SplitMix(seed);
    enet::expected_params(layout, classes)
        .into_iter()
        .map(|ParamSpec { name, shape }| {
            let n: usize = shape.iter().product();
            let (lo, hi) = if name.ends_with("running_var") || name.ends_with("bn.weight") {
                (0.5, 1.5)
            } else if name.ends_with("prelu.weight") {
                (0.0, 0.5)
            } else if name.ends_with(".weight") {
                let fan_in: usize = shape[1..].iter().product();
                let a = (3.0 / fan_in as f32).sqrt();
                (-a, a)
            } else {
                (-0.1, 0.1)
            };
            let data = (0..n).map(|_| rng.uniform(lo, hi)).collect();
            RawTensor { name, shape, data }
        })
        .collect()
}

/// A complete synthetic model file (CamVid-sized class table when `classes` is 12).
pub fn synthetic_file(layout: Layout, classes: usize, seed: u64) -> Vec<u8> {
    let table = if classes == 12 {
        camvid_classes()
    } else {
        (0..classes)
            .map(|i| ClassInfo {
                name: format!("class{i}"),
                color: [
                    (i * 67 % 256) as u8,
                    (i * 131 % 256) as u8,
                    (i * 29 % 256) as u8,
                ],
            })
            .collect()
    };
    let header = Header {
        layout,
        classes: table,
        void_class: None,
        normalization: Normalization::default(),
        provenance: Some(format!("synthetic weights, seed {seed}")),
    };
    write(&header, &synthetic_tensors(layout, classes, seed))
}

/// The graph of a synthetic model: for counting operations and timing, where values do not
/// matter.
pub fn synthetic_graph(layout: Layout, classes: usize) -> Graph {
    Model::from_safetensors(&synthetic_file(layout, classes, 0))
        .expect("synthetic weights always load")
        .graph
}
