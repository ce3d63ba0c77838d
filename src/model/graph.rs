//! The executable form of a network: tensors, and operations with BatchNorm already folded
//! into the convolutions. Both the GPU runtime and the CPU twin run this.

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    /// Max-pool indices: flat `y * W + x` into the pooled plane, as PyTorch stores them.
    U32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorDef {
    pub channels: usize,
    pub dtype: DType,
}

/// Concrete shape of a tensor once the input size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Convolution geometry, `[height, width]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    /// Transposed convolution ("deconvolution"), as PyTorch's `ConvTranspose2d`.
    pub transposed: bool,
    pub output_padding: [usize; 2],
}

impl ConvGeom {
    pub fn new(kh: usize, kw: usize) -> Self {
        ConvGeom {
            kernel: [kh, kw],
            stride: [1, 1],
            pad: [0, 0],
            dilation: [1, 1],
            transposed: false,
            output_padding: [0, 0],
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn pad(mut self, ph: usize, pw: usize) -> Self {
        self.pad = [ph, pw];
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn transposed(mut self, output_padding: usize) -> Self {
        self.transposed = true;
        self.output_padding = [output_padding, output_padding];
        self
    }

    /// Output size along one axis, `None` when the input is too small for the kernel.
    pub fn out_size(&self, axis: usize, input: usize) -> Option<usize> {
        let (k, s, p, d) = (
            self.kernel[axis],
            self.stride[axis],
            self.pad[axis],
            self.dilation[axis],
        );
        if self.transposed {
            ((input.checked_sub(1)? * s + d * (k - 1) + self.output_padding[axis] + 1)
                .checked_sub(2 * p))
            .filter(|&o| o > 0)
        } else {
            let span = d * (k - 1) + 1;
            (input + 2 * p).checked_sub(span).map(|r| r / s + 1)
        }
    }
}

/// A convolution with its BatchNorm folded in, followed by a PReLU.
///
/// Identity and ReLU are PReLU with slope 1 and 0, so every kernel has one epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub cin: usize,
    pub cout: usize,
    pub geom: ConvGeom,
    /// `[cout][cin][kh][kw]`, also for transposed convolutions (PyTorch stores those as
    /// `[cin][cout][kh][kw]`; the loader transposes).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub slope: Vec<f32>,
}

/// A residual added after the convolution's activation, then another PReLU.
/// A residual with fewer channels than the output is zero-padded (ENet's downsampling skip).
#[derive(Clone, Debug, PartialEq)]
pub struct Residual {
    pub tensor: TensorId,
    pub slope: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// ENet's initial block: `cat(conv(x), maxpool(x))`, the pool branch followed by its
    /// folded BatchNorm (`scale * x + shift`) and everything by a PReLU.
    Initial {
        input: TensorId,
        output: TensorId,
        conv: Conv,
        /// Pool window; stride equals the conv's stride.
        pool_kernel: usize,
        pool_pad: usize,
        pool_scale: Vec<f32>,
        pool_shift: Vec<f32>,
        pool_slope: Vec<f32>,
    },
    Conv {
        input: TensorId,
        output: TensorId,
        conv: Conv,
        residual: Option<Residual>,
    },
    /// 2x2 stride 2 max-pool that also writes the argmax indices.
    MaxPool {
        input: TensorId,
        output: TensorId,
        indices: TensorId,
    },
    /// Inverse of [`Op::MaxPool`]: the output takes the shape of `like` (the pool's input).
    Unpool {
        input: TensorId,
        indices: TensorId,
        like: TensorId,
        output: TensorId,
    },
}

impl Op {
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Op::Initial { input, .. } | Op::MaxPool { input, .. } => vec![*input],
            Op::Conv {
                input, residual, ..
            } => {
                let mut v = vec![*input];
                if let Some(r) = residual {
                    v.push(r.tensor);
                }
                v
            }
            // `like` only lends its shape, it is not read.
            Op::Unpool { input, indices, .. } => vec![*input, *indices],
        }
    }

    pub fn outputs(&self) -> Vec<TensorId> {
        match self {
            Op::Initial { output, .. } | Op::Conv { output, .. } | Op::Unpool { output, .. } => {
                vec![*output]
            }
            Op::MaxPool {
                output, indices, ..
            } => vec![*output, *indices],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Op::Initial { .. } => "initial",
            Op::Conv { conv, .. } if conv.geom.transposed => "conv_transpose2d",
            Op::Conv { conv, .. } if conv.geom.kernel == [1, 1] && conv.geom.stride == [1, 1] => {
                "conv1x1"
            }
            Op::Conv { .. } => "conv2d",
            Op::MaxPool { .. } => "maxpool",
            Op::Unpool { .. } => "unpool",
        }
    }
}

/// A network: tensor 0 is the input, `output` holds the logits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<TensorDef>,
    pub ops: Vec<Op>,
    pub output: TensorId,
    /// Layer names of the ops by index (the weights' names, e.g. `bottleneck2_1.main`), for
    /// timings and messages; ops without one may be missing.
    pub names: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("input {w}x{h}: {op} #{index} would produce an empty tensor; the input is too small")]
    TooSmall {
        w: usize,
        h: usize,
        op: &'static str,
        index: usize,
    },
}

impl Graph {
    pub fn new(input_channels: usize) -> Self {
        Graph {
            tensors: vec![TensorDef {
                channels: input_channels,
                dtype: DType::F32,
            }],
            ops: Vec::new(),
            output: 0,
            names: Vec::new(),
        }
    }

    /// Names the last op pushed.
    pub fn name_last(&mut self, name: impl Into<String>) {
        self.names.resize(self.ops.len(), String::new());
        if let Some(last) = self.names.last_mut() {
            *last = name.into();
        }
    }

    /// Op `i`'s layer name, if it has one.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    pub fn tensor(&mut self, channels: usize, dtype: DType) -> TensorId {
        self.tensors.push(TensorDef { channels, dtype });
        self.tensors.len() - 1
    }

    pub fn num_classes(&self) -> usize {
        self.tensors[self.output].channels
    }

    /// Shapes of every tensor for an input of `h` x `w`.
    pub fn shapes(&self, h: usize, w: usize) -> Result<Vec<Shape>, ShapeError> {
        let mut shapes: Vec<Option<Shape>> = vec![None; self.tensors.len()];
        shapes[0] = Some(Shape {
            c: self.tensors[0].channels,
            h,
            w,
        });
        let get =
            |s: &Vec<Option<Shape>>, t: TensorId| s[t].expect("graph is topologically ordered");
        for (index, op) in self.ops.iter().enumerate() {
            let too_small = || ShapeError::TooSmall {
                w,
                h,
                op: op.kind(),
                index,
            };
            let conv_out = |s: Shape, conv: &Conv| -> Option<Shape> {
                Some(Shape {
                    c: conv.cout,
                    h: conv.geom.out_size(0, s.h).filter(|&v| v > 0)?,
                    w: conv.geom.out_size(1, s.w).filter(|&v| v > 0)?,
                })
            };
            match op {
                Op::Initial {
                    input,
                    output,
                    conv,
                    ..
                } => {
                    let s = conv_out(get(&shapes, *input), conv).ok_or_else(too_small)?;
                    shapes[*output] = Some(Shape {
                        c: self.tensors[*output].channels,
                        ..s
                    });
                }
                Op::Conv {
                    input,
                    output,
                    conv,
                    ..
                } => {
                    shapes[*output] =
                        Some(conv_out(get(&shapes, *input), conv).ok_or_else(too_small)?)
                }
                Op::MaxPool {
                    input,
                    output,
                    indices,
                } => {
                    let s = get(&shapes, *input);
                    if s.h < 2 || s.w < 2 {
                        return Err(too_small());
                    }
                    let o = Shape {
                        c: s.c,
                        h: s.h / 2,
                        w: s.w / 2,
                    };
                    shapes[*output] = Some(o);
                    shapes[*indices] = Some(o);
                }
                Op::Unpool {
                    input,
                    like,
                    output,
                    ..
                } => {
                    let l = get(&shapes, *like);
                    shapes[*output] = Some(Shape {
                        c: get(&shapes, *input).c,
                        ..l
                    });
                }
            }
        }
        Ok(shapes
            .into_iter()
            .map(|s| s.expect("every tensor is produced by an op"))
            .collect())
    }

    /// Index of the last op that reads each tensor (`None`: never read).
    pub fn last_use(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.inputs() {
                last[t] = Some(i);
            }
        }
        last
    }

    /// Multiply-adds for one frame at `h` x `w` (convolutions only).
    pub fn multiply_adds(&self, h: usize, w: usize) -> Result<u64, ShapeError> {
        let shapes = self.shapes(h, w)?;
        let mut total = 0u64;
        for op in &self.ops {
            let (conv, input, output) = match op {
                Op::Initial {
                    conv,
                    input,
                    output,
                    ..
                }
                | Op::Conv {
                    conv,
                    input,
                    output,
                    ..
                } => (conv, *input, *output),
                _ => continue,
            };
            let k = (conv.geom.kernel[0] * conv.geom.kernel[1]) as u64;
            let pixels = if conv.geom.transposed {
                shapes[input].h * shapes[input].w
            } else {
                shapes[output].h * shapes[output].w
            } as u64;
            total += pixels * k * (conv.cin * conv.cout) as u64;
        }
        Ok(total)
    }
}
