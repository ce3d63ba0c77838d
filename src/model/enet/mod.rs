//! ENet, described once for both layouts.
//!
//! One walk over the architecture both lists the parameters a layout expects
//! ([`expected_params`]) and builds the executable [`Graph`] from loaded tensors
//! ([`build_graph`]), so the two can never disagree.

use super::ModelError;
use super::graph::{Conv, ConvGeom, DType, Graph, Op, Residual, TensorId};

/// Which ENet variant a set of weights was trained as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The authors' Lua Torch7 model (Paszke et al. 2016).
    Paper,
    /// davidtvs/PyTorch-ENet, the most used reimplementation.
    PytorchEnet,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Paper, Layout::PytorchEnet];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Paper => "paper",
            Layout::PytorchEnet => "pytorch-enet",
        }
    }

    pub fn parse(s: &str) -> Result<Layout, ModelError> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                ModelError::Metadata(format!(
                    "unknown layout {s:?}; expected \"paper\" or \"pytorch-enet\""
                ))
            })
    }

    /// BatchNorm epsilon the layout was trained with.
    pub fn bn_eps(self) -> f32 {
        match self {
            Layout::Paper => 1e-3,
            Layout::PytorchEnet => 1e-5,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter tensor the layout expects: name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Where the builder gets parameter values from.
pub trait ParamSource {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError>;
}

/// Records what is asked for and answers with neutral values.
struct Recorder(Vec<ParamSpec>);

impl ParamSource for Recorder {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        self.0.push(ParamSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
        });
        // Variance 1 and slopes 1 keep folding finite; the values are never used.
        Ok(vec![1.0; shape.iter().product()])
    }
}

/// Every parameter tensor of `layout` with `classes` outputs, in build order.
pub fn expected_params(layout: Layout, classes: usize) -> Vec<ParamSpec> {
    let mut rec = Recorder(Vec::new());
    build_graph(layout, classes, &mut rec).expect("recorder never fails");
    rec.0
}

/// Builds the executable graph, folding BatchNorm with the layout's epsilon.
pub fn build_graph(
    layout: Layout,
    classes: usize,
    src: &mut dyn ParamSource,
) -> Result<Graph, ModelError> {
    let mut b = Builder {
        layout,
        src,
        g: Graph::new(3),
        last_conv: String::new(),
    };
    b.network(classes)?;
    Ok(b.g)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Identity,
    Relu,
    PRelu,
}

#[derive(Clone, Copy)]
enum Main {
    Regular,
    Dilated(usize),
    Asymmetric,
}

struct Builder<'a> {
    layout: Layout,
    src: &'a mut dyn ParamSource,
    g: Graph,
    /// The weights loaded last ([`Builder::conv`]): the name of the op that uses them.
    last_conv: String,
}

impl Builder<'_> {
    fn paper(&self) -> bool {
        self.layout == Layout::Paper
    }

    fn network(&mut self, classes: usize) -> Result<(), ModelError> {
        let enc = Act::PRelu;
        let dec = Act::Relu;
        let x = self.initial(0)?;
        let (x, idx1, pre1) = self.downsample("bottleneck1_0", x, 16, 64)?;
        let mut x = x;
        for i in 1..=4 {
            x = self.regular(&format!("bottleneck1_{i}"), x, 64, Main::Regular, enc)?;
        }
        let (x2, idx2, pre2) = self.downsample("bottleneck2_0", x, 64, 128)?;
        x = x2;
        let stage = [
            Main::Regular,
            Main::Dilated(2),
            Main::Asymmetric,
            Main::Dilated(4),
            Main::Regular,
            Main::Dilated(8),
            Main::Asymmetric,
            Main::Dilated(16),
        ];
        for s in [2, 3] {
            for (i, main) in stage.iter().enumerate() {
                x = self.regular(&format!("bottleneck{s}_{}", i + 1), x, 128, *main, enc)?;
            }
        }
        x = self.upsample("bottleneck4_0", x, idx2, pre2, 128, 64)?;
        for i in 1..=2 {
            x = self.regular(&format!("bottleneck4_{i}"), x, 64, Main::Regular, dec)?;
        }
        x = self.upsample("bottleneck5_0", x, idx1, pre1, 64, 16)?;
        x = self.regular("bottleneck5_1", x, 16, Main::Regular, dec)?;
        let geom = if self.paper() {
            ConvGeom::new(2, 2).stride(2).transposed(0)
        } else {
            ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1)
        };
        let conv = self.conv(
            "fullconv",
            16,
            classes,
            geom,
            self.paper(),
            false,
            Act::Identity,
        )?;
        let out = self.emit(x, conv, None);
        self.g.output = out;
        Ok(())
    }

    fn internal(&self, cin: usize, cout: usize) -> usize {
        if self.paper() { cout / 4 } else { cin / 4 }
    }

    fn initial(&mut self, input: TensorId) -> Result<TensorId, ModelError> {
        let paper = self.paper();
        let w = self.src.get("initial.conv.weight", &[13, 3, 3, 3])?;
        let bias = if paper {
            self.src.get("initial.conv.bias", &[13])?
        } else {
            vec![0.0; 13]
        };
        let (scale, shift) = self.bn("initial.bn", 16)?;
        let slope = self.prelu("initial.prelu", 16)?;
        let mut conv = Conv {
            cin: 3,
            cout: 13,
            geom: ConvGeom::new(3, 3).stride(2).pad(1, 1),
            weight: w,
            bias,
            slope: slope[..13].to_vec(),
        };
        fold(&mut conv, &scale[..13], &shift[..13]);
        let (pool_kernel, pool_pad) = if paper { (2, 0) } else { (3, 1) };
        let output = self.g.tensor(16, DType::F32);
        self.g.ops.push(Op::Initial {
            input,
            output,
            conv,
            pool_kernel,
            pool_pad,
            pool_scale: scale[13..].to_vec(),
            pool_shift: shift[13..].to_vec(),
            pool_slope: slope[13..].to_vec(),
        });
        self.g.name_last("initial");
        Ok(output)
    }

    /// Returns the output, the pool indices and the pool's input (for the unpool's shape).
    fn downsample(
        &mut self,
        name: &str,
        x: TensorId,
        cin: usize,
        cout: usize,
    ) -> Result<(TensorId, TensorId, TensorId), ModelError> {
        let internal = self.internal(cin, cout);
        let paper = self.paper();
        let pooled = self.g.tensor(cin, DType::F32);
        let indices = self.g.tensor(cin, DType::U32);
        self.g.ops.push(Op::MaxPool {
            input: x,
            output: pooled,
            indices,
        });
        self.g.name_last(format!("{name}.pool"));
        let c = self.conv(
            &format!("{name}.proj"),
            cin,
            internal,
            ConvGeom::new(2, 2).stride(2),
            false,
            true,
            Act::PRelu,
        )?;
        let e = self.emit(x, c, None);
        let c = self.conv(
            &format!("{name}.conv"),
            internal,
            internal,
            ConvGeom::new(3, 3).pad(1, 1),
            paper,
            true,
            Act::PRelu,
        )?;
        let e = self.emit(e, c, None);
        let expand_act = if paper { Act::Identity } else { Act::PRelu };
        let c = self.conv(
            &format!("{name}.expand"),
            internal,
            cout,
            ConvGeom::new(1, 1),
            false,
            true,
            expand_act,
        )?;
        let slope = self.prelu(&format!("{name}.out_prelu"), cout)?;
        let out = self.emit(
            e,
            c,
            Some(Residual {
                tensor: pooled,
                slope,
            }),
        );
        Ok((out, indices, x))
    }

    fn regular(
        &mut self,
        name: &str,
        x: TensorId,
        ch: usize,
        main: Main,
        act: Act,
    ) -> Result<TensorId, ModelError> {
        let internal = ch / 4;
        let paper = self.paper();
        let c = self.conv(
            &format!("{name}.proj"),
            ch,
            internal,
            ConvGeom::new(1, 1),
            false,
            true,
            act,
        )?;
        let mut e = self.emit(x, c, None);
        match main {
            Main::Regular | Main::Dilated(_) => {
                let d = match main {
                    Main::Dilated(d) => d,
                    _ => 1,
                };
                let geom = ConvGeom::new(3, 3).pad(d, d).dilation(d);
                let c = self.conv(
                    &format!("{name}.conv"),
                    internal,
                    internal,
                    geom,
                    paper,
                    true,
                    act,
                )?;
                e = self.emit(e, c, None);
            }
            Main::Asymmetric => {
                // Paper: 1x5 then 5x1 with nothing between; PyTorch-ENet: 5x1 -> BN -> act
                // -> 1x5 -> BN -> act.
                let (first, second) = if paper {
                    (ConvGeom::new(1, 5).pad(0, 2), ConvGeom::new(5, 1).pad(2, 0))
                } else {
                    (ConvGeom::new(5, 1).pad(2, 0), ConvGeom::new(1, 5).pad(0, 2))
                };
                let c = if paper {
                    self.conv(
                        &format!("{name}.conv1"),
                        internal,
                        internal,
                        first,
                        false,
                        false,
                        Act::Identity,
                    )?
                } else {
                    self.conv(
                        &format!("{name}.conv1"),
                        internal,
                        internal,
                        first,
                        false,
                        true,
                        act,
                    )?
                };
                e = self.emit(e, c, None);
                let c = self.conv(
                    &format!("{name}.conv2"),
                    internal,
                    internal,
                    second,
                    paper,
                    true,
                    act,
                )?;
                e = self.emit(e, c, None);
            }
        }
        let expand_act = if paper { Act::Identity } else { act };
        let c = self.conv(
            &format!("{name}.expand"),
            internal,
            ch,
            ConvGeom::new(1, 1),
            false,
            true,
            expand_act,
        )?;
        let slope = self.act_slope(&format!("{name}.out_prelu"), ch, act)?;
        Ok(self.emit(e, c, Some(Residual { tensor: x, slope })))
    }

    fn upsample(
        &mut self,
        name: &str,
        x: TensorId,
        indices: TensorId,
        like: TensorId,
        cin: usize,
        cout: usize,
    ) -> Result<TensorId, ModelError> {
        let internal = self.internal(cin, cout);
        let paper = self.paper();
        let c = self.conv(
            &format!("{name}.main"),
            cin,
            cout,
            ConvGeom::new(1, 1),
            false,
            true,
            Act::Identity,
        )?;
        let main = self.emit(x, c, None);
        let unpooled = self.g.tensor(cout, DType::F32);
        self.g.ops.push(Op::Unpool {
            input: main,
            indices,
            like,
            output: unpooled,
        });
        self.g.name_last(format!("{name}.unpool"));
        let c = self.conv(
            &format!("{name}.proj"),
            cin,
            internal,
            ConvGeom::new(1, 1),
            false,
            true,
            Act::Relu,
        )?;
        let e = self.emit(x, c, None);
        let geom = if paper {
            ConvGeom::new(3, 3).stride(2).pad(1, 1).transposed(1)
        } else {
            ConvGeom::new(2, 2).stride(2).transposed(0)
        };
        let c = self.conv(
            &format!("{name}.tconv"),
            internal,
            internal,
            geom,
            paper,
            true,
            Act::Relu,
        )?;
        let e = self.emit(e, c, None);
        // Both layouts leave the upsampling expansion without activation before the sum.
        let c = self.conv(
            &format!("{name}.expand"),
            internal,
            cout,
            ConvGeom::new(1, 1),
            false,
            true,
            Act::Identity,
        )?;
        Ok(self.emit(
            e,
            c,
            Some(Residual {
                tensor: unpooled,
                slope: vec![0.0; cout],
            }),
        ))
    }

    fn emit(&mut self, input: TensorId, conv: Conv, residual: Option<Residual>) -> TensorId {
        let output = self.g.tensor(conv.cout, DType::F32);
        self.g.ops.push(Op::Conv {
            input,
            output,
            conv,
            residual,
        });
        let name = std::mem::take(&mut self.last_conv);
        self.g.name_last(name);
        output
    }

    /// Loads `{name}.weight` (+ bias, BatchNorm, PReLU as asked) and folds the BatchNorm.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        geom: ConvGeom,
        bias: bool,
        bn: bool,
        act: Act,
    ) -> Result<Conv, ModelError> {
        self.last_conv = name.to_string();
        let [kh, kw] = geom.kernel;
        let weight = if geom.transposed {
            // PyTorch keeps transposed weights as [cin][cout][kh][kw].
            let w = self
                .src
                .get(&format!("{name}.weight"), &[cin, cout, kh, kw])?;
            let mut t = vec![0.0; w.len()];
            for i in 0..cin {
                for o in 0..cout {
                    for k in 0..kh * kw {
                        t[(o * cin + i) * kh * kw + k] = w[(i * cout + o) * kh * kw + k];
                    }
                }
            }
            t
        } else {
            self.src
                .get(&format!("{name}.weight"), &[cout, cin, kh, kw])?
        };
        let bias = if bias {
            self.src.get(&format!("{name}.bias"), &[cout])?
        } else {
            vec![0.0; cout]
        };
        let slope = self.act_slope(&format!("{name}.prelu"), cout, act)?;
        let mut conv = Conv {
            cin,
            cout,
            geom,
            weight,
            bias,
            slope,
        };
        if bn {
            let (scale, shift) = self.bn(&format!("{name}.bn"), cout)?;
            fold(&mut conv, &scale, &shift);
        }
        Ok(conv)
    }

    fn act_slope(&mut self, name: &str, c: usize, act: Act) -> Result<Vec<f32>, ModelError> {
        match act {
            Act::Identity => Ok(vec![1.0; c]),
            Act::Relu => Ok(vec![0.0; c]),
            Act::PRelu => self.prelu(name, c),
        }
    }

    /// PReLU slopes: one per channel (paper) or one per layer (PyTorch-ENet), per channel here.
    fn prelu(&mut self, name: &str, c: usize) -> Result<Vec<f32>, ModelError> {
        if self.paper() {
            self.src.get(&format!("{name}.weight"), &[c])
        } else {
            let a = self.src.get(&format!("{name}.weight"), &[1])?;
            Ok(vec![a[0]; c])
        }
    }

    /// BatchNorm in inference mode as `scale * x + shift`.
    fn bn(&mut self, name: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let gamma = self.src.get(&format!("{name}.weight"), &[c])?;
        let beta = self.src.get(&format!("{name}.bias"), &[c])?;
        let mean = self.src.get(&format!("{name}.running_mean"), &[c])?;
        let var_name = format!("{name}.running_var");
        let var = self.src.get(&var_name, &[c])?;
        if let Some(i) = var.iter().position(|&v| v < 0.0) {
            return Err(ModelError::BadValue {
                tensor: var_name,
                problem: format!("negative variance {} at index {i}", var[i]),
            });
        }
        let eps = self.layout.bn_eps();
        let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
        let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        Ok((scale, shift))
    }
}

/// `bn(conv(x) + b) = conv_{w*s}(x) + (b*s + t)`.
fn fold(conv: &mut Conv, scale: &[f32], shift: &[f32]) {
    let per_out = conv.weight.len() / conv.cout;
    for o in 0..conv.cout {
        for w in &mut conv.weight[o * per_out..(o + 1) * per_out] {
            *w *= scale[o];
        }
        conv.bias[o] = conv.bias[o] * scale[o] + shift[o];
    }
}

#[cfg(test)]
mod tests;
