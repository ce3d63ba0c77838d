//! The three convolutions one op per dispatch: general 2D (dilated, asymmetric),
//! pointwise, and transposed (`shaders/conv2d.wgsl`, `conv1x1.wgsl`,
//! `conv_transpose2d.wgsl`, sharing bindings and epilogue in `conv_common.wgsl`; twin
//! [`super::twin::conv`]). Bias, PReLU and the residual (added, then PReLU again) are fused
//! into the write. Each invocation computes one pixel's 16 output channels.

use super::KernelSource;
use super::twin::{Tensor, prelu};
use super::unit::{Call, Lowering, Pipeline, Resource, conv_groups, grid_16x4, u};
use crate::model::graph::Op;
use crate::model::graph::{Conv, Shape};

pub const CONV2D: KernelSource = KernelSource {
    name: "conv2d",
    wgsl: net_shader!("conv_common.wgsl"; "conv2d.wgsl"),
};
pub const CONV1X1: KernelSource = KernelSource {
    name: "conv1x1",
    wgsl: net_shader!("conv_common.wgsl"; "conv1x1.wgsl"),
};
pub const CONV_TRANSPOSE2D: KernelSource = KernelSource {
    name: "conv_transpose2d",
    wgsl: net_shader!("conv_common.wgsl"; "conv_transpose2d.wgsl"),
};

/// Classes the last transposed convolution can take the argmax of itself: one invocation's
/// output channels.
pub const ARGMAX_CLASSES: usize = 16;

params! {
    ConvParams for [CONV2D, CONV1X1, CONV_TRANSPOSE2D] {
        in_c: u32, in_h: u32, in_w: u32, out_c: u32,
        out_h: u32, out_w: u32, k_h: u32, k_w: u32,
        stride_h: u32, stride_w: u32, pad_h: u32, pad_w: u32,
        dil_h: u32, dil_w: u32, w_off: u32, aux_off: u32,
        res_c: u32, has_res: u32, groups: u32, _pad: u32,
    }
}

bindings! {
    /// `residual` is read only when `has_res` is set; any readable tensor fills it otherwise.
    ConvBindings for [CONV2D @ "main", CONV1X1 @ "main", CONV_TRANSPOSE2D @ "main"] {
        weights: Read,
        aux: Read,
        input: Read,
        residual: Read,
        output: ReadWrite,
    }
}

bindings! {
    /// The network's last transposed convolution writing the class map as well.
    ConvArgmaxBindings for [CONV_TRANSPOSE2D @ "with_argmax"] {
        weights: Read,
        aux: Read,
        input: Read,
        residual: Read,
        output: ReadWrite,
        classes: ReadWrite,
    }
}

impl ConvParams {
    /// One invocation per output pixel and 16 channels (four groups of 4).
    pub fn grid(&self) -> [u32; 3] {
        grid_16x4(self.out_w, self.out_h, self.groups / 4)
    }
}

/// Op `i`, an [`Op::Conv`]; an error names what does not fit.
pub fn call(l: &Lowering, i: usize) -> Result<Call, String> {
    let (kernel, params, b) = parts(l, i)?;
    Ok(Call::new(
        l.label(i, kernel.name),
        Pipeline::Entry(kernel, "main"),
        &params,
        b.list(),
        params.grid(),
    ))
}

/// Op `i`, the network's last op (a transposed convolution of at most 16 classes), writing
/// the class map too: its `with_argmax` entry.
pub fn with_argmax(l: &Lowering, i: usize) -> Result<Call, String> {
    let (kernel, params, b) = parts(l, i)?;
    let bindings = ConvArgmaxBindings {
        weights: b.weights,
        aux: b.aux,
        input: b.input,
        residual: b.residual,
        output: b.output,
        classes: Resource::Classes,
    };
    Ok(Call::new(
        l.label(i, "conv_transpose2d+argmax"),
        Pipeline::Entry(kernel, "with_argmax"),
        &params,
        bindings.list(),
        params.grid(),
    ))
}

fn parts(
    l: &Lowering,
    i: usize,
) -> Result<(KernelSource, ConvParams, ConvBindings<Resource>), String> {
    let op = &l.graph.ops[i];
    let Op::Conv {
        input,
        output,
        conv,
        residual,
    } = op
    else {
        unreachable!("op {i} is lowered as a convolution")
    };
    let (si, so) = (l.shapes[*input], l.shapes[*output]);
    let g = conv.geom;
    let (res_t, res_c) = match residual {
        Some(r) => {
            let rs = l.shapes[r.tensor];
            if (rs.h, rs.w) != (so.h, so.w) || rs.c > so.c {
                return Err(format!(
                    "op {i}: residual {}x{}x{} does not fit output {}x{}x{}",
                    rs.c, rs.h, rs.w, so.c, so.h, so.w
                ));
            }
            (r.tensor, rs.c)
        }
        None => (*input, 0),
    };
    let kernel = match op.kind() {
        "conv_transpose2d" => CONV_TRANSPOSE2D,
        "conv1x1" => CONV1X1,
        _ => CONV2D,
    };
    let off = l.offsets[i];
    let params = ConvParams {
        in_c: u(si.c),
        in_h: u(si.h),
        in_w: u(si.w),
        out_c: u(so.c),
        out_h: u(so.h),
        out_w: u(so.w),
        k_h: u(g.kernel[0]),
        k_w: u(g.kernel[1]),
        stride_h: u(g.stride[0]),
        stride_w: u(g.stride[1]),
        pad_h: u(g.pad[0]),
        pad_w: u(g.pad[1]),
        dil_h: u(g.dilation[0]),
        dil_w: u(g.dilation[1]),
        w_off: off.weights,
        aux_off: off.aux,
        res_c: u(res_c),
        has_res: residual.is_some() as u32,
        groups: u(conv_groups(conv.cout)),
        _pad: 0,
    };
    let bindings = ConvBindings {
        weights: Resource::Weights,
        aux: Resource::Aux,
        input: Resource::Tensor(*input),
        residual: Resource::Tensor(res_t),
        output: Resource::Tensor(*output),
    };
    Ok((kernel, params, bindings))
}

// The twin: the same operation in plain Rust, for the tests.

/// Raw convolution sum plus bias, no activation. Transposed convolutions are computed in
/// scatter form, independently of the shader's gather form.
fn conv_sum(input: &Tensor, conv: &Conv, out_shape: Shape) -> Tensor {
    let g = &conv.geom;
    let [kh, kw] = g.kernel;
    let (ih, iw) = (input.shape.h, input.shape.w);
    let (oh, ow) = (out_shape.h, out_shape.w);
    let mut out = Tensor::zeros(out_shape);
    for co in 0..conv.cout {
        let plane = &mut out.data[co * oh * ow..(co + 1) * oh * ow];
        plane.fill(conv.bias[co]);
        for ci in 0..conv.cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = conv.weight[((co * conv.cin + ci) * kh + ky) * kw + kx];
                    let dy = (ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    let dx = (kx * g.dilation[1]) as isize - g.pad[1] as isize;
                    if g.transposed {
                        for iy in 0..ih {
                            let oy = (iy * g.stride[0]) as isize + dy;
                            if oy < 0 || oy >= oh as isize {
                                continue;
                            }
                            for ix in 0..iw {
                                let ox = (ix * g.stride[1]) as isize + dx;
                                if ox >= 0 && ox < ow as isize {
                                    plane[oy as usize * ow + ox as usize] +=
                                        wv * input.at(ci, iy, ix);
                                }
                            }
                        }
                    } else {
                        for oy in 0..oh {
                            let iy = (oy * g.stride[0]) as isize + dy;
                            if iy < 0 || iy >= ih as isize {
                                continue;
                            }
                            for ox in 0..ow {
                                let ix = (ox * g.stride[1]) as isize + dx;
                                if ix >= 0 && ix < iw as isize {
                                    plane[oy * ow + ox] +=
                                        wv * input.at(ci, iy as usize, ix as usize);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Convolution + folded BatchNorm + PReLU, then optionally `+ residual` (zero-padded to the
/// output's channels) and a second PReLU.
pub fn conv(
    input: &Tensor,
    conv: &Conv,
    residual: Option<(&Tensor, &[f32])>,
    out_shape: Shape,
) -> Tensor {
    let mut out = conv_sum(input, conv, out_shape);
    let hw = out_shape.h * out_shape.w;
    for co in 0..conv.cout {
        for i in 0..hw {
            let mut v = prelu(out.data[co * hw + i], conv.slope[co]);
            if let Some((res, post)) = residual {
                if co < res.shape.c {
                    v += res.data[co * hw + i];
                }
                v = prelu(v, post[co]);
            }
            out.data[co * hw + i] = v;
        }
    }
    out
}
