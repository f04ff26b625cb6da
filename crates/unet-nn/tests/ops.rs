//! The fast Flex ops (convolutions, max-pool, crop-and-concatenate) and their backward
//! against burn's own ops (the generic formulation), values and gradients to 1e-4 relative.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use unet_nn::ops::{self, ConvKind, generic};

type Ad = Autodiff<Flex>;

fn close(a: Tensor<Flex, 4>, b: Tensor<Flex, 4>, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shape");
    let a = a.into_data().to_vec::<f32>().unwrap();
    let b = b.into_data().to_vec::<f32>().unwrap();
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-4 * scale, "{what}: max difference {worst} (scale {scale})");
}

fn generic_conv<B: burn::tensor::backend::Backend>(
    kind: ConvKind,
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Tensor<B, 1>,
) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(generic::conv::<B>(
        kind,
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    )))
}

fn check(kind: ConvKind, x_shape: [usize; 4], w_shape: [usize; 4], co: usize) {
    let dev = Default::default();
    let dist = Distribution::Uniform(-1.0, 1.0);
    let x = Tensor::<Flex, 4>::random(x_shape, dist, &dev);
    let w = Tensor::<Flex, 4>::random(w_shape, dist, &dev);
    let b = Tensor::<Flex, 1>::random([co], dist, &dev);
    let fast = ops::conv(kind, x.clone(), w.clone(), b.clone());
    let plain = generic_conv(kind, x.clone(), w.clone(), b.clone());
    close(fast.clone(), plain, &format!("{kind:?} forward"));
    // Gradients of sum(g * y) for a random g, through both formulations.
    let g = Tensor::<Flex, 4>::random(fast.dims(), dist, &dev);
    let grads = |use_fast: bool| {
        let xa = Tensor::<Ad, 4>::from_inner(x.clone()).require_grad();
        let wa = Tensor::<Ad, 4>::from_inner(w.clone()).require_grad();
        let ba = Tensor::<Ad, 1>::from_inner(b.clone()).require_grad();
        let y = if use_fast {
            ops::conv(kind, xa.clone(), wa.clone(), ba.clone())
        } else {
            generic_conv(kind, xa.clone(), wa.clone(), ba.clone())
        };
        let gr = (y * Tensor::from_inner(g.clone())).sum().backward();
        (xa.grad(&gr).unwrap(), wa.grad(&gr).unwrap(), ba.grad(&gr).unwrap().reshape([1, 1, 1, co]))
    };
    let (fx, fw, fb) = grads(true);
    let (px, pw, pb) = grads(false);
    close(fx, px, &format!("{kind:?} input gradient"));
    close(fw, pw, &format!("{kind:?} weight gradient"));
    close(fb, pb, &format!("{kind:?} bias gradient"));
}

#[test]
fn valid_conv3x3_with_relu() {
    check(ConvKind::Conv3x3 { pad: 0, relu: true }, [2, 3, 21, 18], [5, 3, 3, 3], 5);
}

#[test]
fn same_conv3x3_without_relu() {
    check(ConvKind::Conv3x3 { pad: 1, relu: false }, [1, 4, 12, 15], [6, 4, 3, 3], 6);
}

#[test]
fn up_convolution() {
    check(ConvKind::UpConv2x2, [2, 8, 7, 9], [8, 4, 2, 2], 4);
}

#[test]
fn one_by_one_head() {
    check(ConvKind::Conv1x1, [2, 6, 10, 11], [3, 6, 1, 1], 3);
}

/// Without gradient tracking on the input (the first layer), no input gradient is asked for
/// and the weight gradient is still right.
#[test]
fn first_layer_without_input_gradient() {
    let dev = Default::default();
    let kind = ConvKind::Conv3x3 { pad: 0, relu: true };
    let x = Tensor::<Flex, 4>::random([1, 1, 20, 20], Distribution::Uniform(-1.0, 1.0), &dev);
    let w = Tensor::<Flex, 4>::random([4, 1, 3, 3], Distribution::Uniform(-1.0, 1.0), &dev);
    let b = Tensor::<Flex, 1>::zeros([4], &dev);
    let wgrad = |use_fast: bool| {
        let xa = Tensor::<Ad, 4>::from_inner(x.clone());
        let wa = Tensor::<Ad, 4>::from_inner(w.clone()).require_grad();
        let ba = Tensor::<Ad, 1>::from_inner(b.clone()).require_grad();
        let y = if use_fast { ops::conv(kind, xa, wa.clone(), ba) } else { generic_conv(kind, xa, wa.clone(), ba) };
        let gr = y.powf_scalar(2.0).sum().backward();
        wa.grad(&gr).unwrap()
    };
    close(wgrad(true), wgrad(false), "weight gradient");
}

/// Values and input gradients of a one-input op, fast against generic, under autodiff.
fn check_unary(
    x: Tensor<Flex, 4>,
    fast: impl Fn(Tensor<Ad, 4>) -> Tensor<Ad, 4>,
    plain: impl Fn(Tensor<Ad, 4>) -> Tensor<Ad, 4>,
    what: &str,
) {
    let run = |f: &dyn Fn(Tensor<Ad, 4>) -> Tensor<Ad, 4>| {
        let xa = Tensor::<Ad, 4>::from_inner(x.clone()).require_grad();
        let y = f(xa.clone());
        // A fixed, tie-free output gradient, the same for both runs.
        let n = y.dims().iter().product::<usize>();
        let g = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect::<Vec<_>>();
        let g = Tensor::<Flex, 4>::from_data(burn::tensor::TensorData::new(g, y.dims()), &x.device());
        let gr = (y.clone() * Tensor::from_inner(g)).sum().backward();
        (y.inner(), xa.grad(&gr).unwrap())
    };
    let (fy, fx) = run(&fast);
    let (py, px) = run(&plain);
    close(fy, py, &format!("{what} forward"));
    close(fx, px, &format!("{what} gradient"));
}

#[test]
fn max_pool_values_and_gradient() {
    // Random values: no ties inside a window, so the gradient's route is unique.
    let x = Tensor::<Flex, 4>::random([2, 3, 14, 18], Distribution::Uniform(-1.0, 1.0), &Default::default());
    let plain = |x: Tensor<Ad, 4>| {
        Tensor::from_primitive(TensorPrimitive::Float(generic::max_pool::<Ad>(x.into_primitive().tensor())))
    };
    check_unary(x, ops::max_pool, plain, "max_pool");
}

#[test]
fn crop_cat_values_and_gradients() {
    let dev = Default::default();
    let skip = Tensor::<Flex, 4>::random([2, 3, 15, 20], Distribution::Uniform(-1.0, 1.0), &dev);
    let up = Tensor::<Flex, 4>::random([2, 4, 8, 12], Distribution::Uniform(-1.0, 1.0), &dev);
    let grads = |fast: bool| {
        let sa = Tensor::<Ad, 4>::from_inner(skip.clone()).require_grad();
        let ua = Tensor::<Ad, 4>::from_inner(up.clone()).require_grad();
        let y = if fast {
            ops::crop_cat(sa.clone(), ua.clone())
        } else {
            Tensor::from_primitive(TensorPrimitive::Float(generic::crop_cat::<Ad>(
                sa.clone().into_primitive().tensor(),
                ua.clone().into_primitive().tensor(),
            )))
        };
        assert_eq!(y.dims(), [2, 7, 8, 12]);
        let weights = Tensor::<Ad, 4>::from_inner(y.clone().inner().powf_scalar(3.0));
        let gr = (y.clone() * weights).sum().backward();
        (y.inner(), sa.grad(&gr).unwrap(), ua.grad(&gr).unwrap())
    };
    let (fy, fs, fu) = grads(true);
    let (py, ps, pu) = grads(false);
    close(fy, py, "crop_cat forward");
    close(fs, ps, "crop_cat skip gradient");
    close(fu, pu, "crop_cat up gradient");
}
