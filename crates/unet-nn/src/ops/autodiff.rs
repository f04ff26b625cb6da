//! `Autodiff<B>` for [`UnetBackend`]: one graph node per op, whose backward is `B`'s own
//! (the fast kernels on Flex) instead of burn's generic one.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::TensorMetadata;
use burn::tensor::ops::FloatTensor;

use super::{ConvKind, UnetBackend};

#[derive(Debug)]
struct ConvBackward;

/// What the backward needs: the kind, input, weight, bias and (fused ReLU) output.
type State<B> = (ConvKind, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, Option<FloatTensor<B>>);

impl<B: UnetBackend> Backward<B, 3> for ConvBackward {
    type State = State<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (kind, x, w, b, y) = ops.state;
        let (dx, dw, db) = B::unet_conv_backward(kind, x, w, b, y, grad, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, dw);
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, db);
        }
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl<B: UnetBackend> Backward<B, 1> for MaxPoolBackward {
    /// The pooled input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::unet_max_pool_backward(ops.state, grad));
        }
    }
}

#[derive(Debug)]
struct CropCatBackward;

impl<B: UnetBackend> Backward<B, 2> for CropCatBackward {
    /// The shapes of the skip map and the up-convolution output.
    type State = ([usize; 4], [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_skip, node_up] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (d_skip, d_up) = B::unet_crop_cat_backward(ops.state.0, ops.state.1, grad);
        if let Some(node) = node_skip {
            grads.register::<B>(node.id, d_skip);
        }
        if let Some(node) = node_up {
            grads.register::<B>(node.id, d_up);
        }
    }
}

fn dims4<T: TensorMetadata>(t: &T) -> [usize; 4] {
    let s = t.shape();
    let s = s.as_slice();
    [s[0], s[1], s[2], s[3]]
}

impl<B: UnetBackend, C: CheckpointStrategy> UnetBackend for Autodiff<B, C> {
    fn unet_max_pool(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match MaxPoolBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::unet_max_pool(x.primitive.clone());
                prep.finish(x.primitive, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::unet_max_pool(x.primitive)),
        }
    }

    fn unet_crop_cat(skip: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let shapes = (dims4(&skip.primitive), dims4(&up.primitive));
        match CropCatBackward.prepare::<C>([skip.node.clone(), up.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(shapes, B::unet_crop_cat(skip.primitive, up.primitive)),
            OpsKind::UnTracked(prep) => prep.finish(B::unet_crop_cat(skip.primitive, up.primitive)),
        }
    }

    fn unet_conv(
        kind: ConvKind,
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::unet_conv(kind, x.primitive.clone(), weight.primitive.clone(), bias.primitive.clone());
                let saved = kind.relu().then(|| y.clone());
                prep.finish((kind, x.primitive, weight.primitive, bias.primitive, saved), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::unet_conv(kind, x.primitive, weight.primitive, bias.primitive)),
        }
    }
}
