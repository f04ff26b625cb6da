//! Flex (the CPU backend) for [`UnetBackend`]: the kernels of `unet-kernels` on the tensors'
//! contiguous `f32` data; other dtypes fall back to [`super::generic`].

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData, TensorMetadata};
use unet_kernels::{Dims, conv1x1, conv3x3, crop_cat, pool, upconv2x2};

use super::{ConvGrads, ConvKind, UnetBackend, generic};

/// A contiguous `f32` copy (or view) of `t` with its shape, or `None` for other dtypes.
fn host(t: &FlexTensor) -> Option<(FlexTensor, Vec<usize>)> {
    (t.dtype() == DType::F32).then(|| (t.to_contiguous(), t.shape().as_slice().to_vec()))
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn dims(s: &[usize]) -> Dims {
    Dims::new(s[0], s[1], s[2], s[3])
}

/// Zero-pads every plane of `x` by `p` on all sides.
fn pad(x: &[f32], d: Dims, p: usize) -> (Vec<f32>, Dims) {
    let pd = Dims::new(d.n, d.c, d.h + 2 * p, d.w + 2 * p);
    let mut out = vec![0.0; pd.len()];
    for plane in 0..d.n * d.c {
        for r in 0..d.h {
            out[(plane * pd.h + r + p) * pd.w + p..][..d.w].copy_from_slice(&x[(plane * d.h + r) * d.w..][..d.w]);
        }
    }
    (out, pd)
}

/// The inverse of [`pad`]: the centre of every plane of `x` (`pd`).
fn unpad(x: &[f32], pd: Dims, p: usize) -> Vec<f32> {
    let (h, w) = (pd.h - 2 * p, pd.w - 2 * p);
    let mut out = Vec::with_capacity(pd.n * pd.c * h * w);
    for plane in 0..pd.n * pd.c {
        for r in 0..h {
            out.extend_from_slice(&x[(plane * pd.h + r + p) * pd.w + p..][..w]);
        }
    }
    out
}

impl UnetBackend for Flex {
    fn unet_conv(kind: ConvKind, x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (Some((xt, xs)), Some((wt, ws)), Some((bt, _))) = (host(&x), host(&weight), host(&bias)) else {
            return generic::conv::<Flex>(kind, x, weight, bias);
        };
        let (xv, wv, bv, d) = (slice(&xt), slice(&wt), slice(&bt), dims(&xs));
        match kind {
            ConvKind::Conv3x3 { pad: p, relu } => {
                let co = ws[0];
                let y = if p == 0 {
                    conv3x3::forward(xv, d, wv, co, Some(bv), relu)
                } else {
                    let (xp, pd) = pad(xv, d, p);
                    conv3x3::forward(&xp, pd, wv, co, Some(bv), relu)
                };
                let od = conv3x3::output_dims(Dims::new(d.n, d.c, d.h + 2 * p, d.w + 2 * p), co);
                tensor(y, vec![od.n, od.c, od.h, od.w])
            }
            ConvKind::UpConv2x2 => {
                let co = ws[1];
                tensor(upconv2x2::forward(xv, d, wv, co, Some(bv)), vec![d.n, co, 2 * d.h, 2 * d.w])
            }
            ConvKind::Conv1x1 => {
                let co = ws[0];
                tensor(conv1x1::forward(xv, d, wv, co, Some(bv)), vec![d.n, co, d.h, d.w])
            }
        }
    }

    fn unet_conv_backward(
        kind: ConvKind,
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        output: Option<FlexTensor>,
        grad: FlexTensor,
        input_grad: bool,
    ) -> ConvGrads<Self> {
        let (Some((xt, xs)), Some((wt, ws)), Some((gt, _))) = (host(&x), host(&weight), host(&grad)) else {
            return generic::conv_backward::<Flex>(kind, x, weight, bias, output, grad, input_grad);
        };
        let (xv, wv, gv, d) = (slice(&xt), slice(&wt), slice(&gt), dims(&xs));
        let out = output.as_ref().and_then(host);
        let (grads, co) = match kind {
            ConvKind::Conv3x3 { pad: p, .. } => {
                let co = ws[0];
                let y = out.as_ref().map(|(t, _)| slice(t));
                let g = if p == 0 {
                    conv3x3::backward(xv, d, wv, co, y, gv, input_grad)
                } else {
                    let (xp, pd) = pad(xv, d, p);
                    let mut g = conv3x3::backward(&xp, pd, wv, co, y, gv, input_grad);
                    g.input = g.input.map(|dx| unpad(&dx, pd, p));
                    g
                };
                (g, co)
            }
            ConvKind::UpConv2x2 => (upconv2x2::backward(xv, d, wv, ws[1], gv, input_grad), ws[1]),
            ConvKind::Conv1x1 => (conv1x1::backward(xv, d, wv, ws[0], gv, input_grad), ws[0]),
        };
        (grads.input.map(|dx| tensor(dx, xs)), tensor(grads.weight, ws), tensor(grads.bias, vec![co]))
    }

    fn unet_max_pool(x: FlexTensor) -> FlexTensor {
        let Some((xt, xs)) = host(&x) else {
            return generic::max_pool::<Flex>(x);
        };
        let od = pool::output_dims(dims(&xs));
        tensor(pool::forward(slice(&xt), dims(&xs)), vec![od.n, od.c, od.h, od.w])
    }

    fn unet_max_pool_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (Some((xt, xs)), Some((gt, _))) = (host(&x), host(&grad)) else {
            return generic::max_pool_backward::<Flex>(x, grad);
        };
        tensor(pool::backward(slice(&xt), dims(&xs), slice(&gt)), xs)
    }

    fn unet_crop_cat(skip: FlexTensor, up: FlexTensor) -> FlexTensor {
        let (Some((st, ss)), Some((ut, us))) = (host(&skip), host(&up)) else {
            return generic::crop_cat::<Flex>(skip, up);
        };
        let y = crop_cat::forward(slice(&st), dims(&ss), slice(&ut), dims(&us));
        tensor(y, vec![us[0], ss[1] + us[1], us[2], us[3]])
    }

    fn unet_crop_cat_backward(
        skip_shape: [usize; 4],
        up_shape: [usize; 4],
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let Some((gt, _)) = host(&grad) else {
            return generic::crop_cat_backward::<Flex>(skip_shape, up_shape, grad);
        };
        let (ds, du) = crop_cat::backward(dims(&skip_shape), dims(&up_shape), slice(&gt));
        (tensor(ds, skip_shape.to_vec()), tensor(du, up_shape.to_vec()))
    }
}
