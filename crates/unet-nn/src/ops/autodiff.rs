//! `Autodiff<B>` for [`UnetBackend`]: one graph node per convolution, whose backward is
//! `B::unet_conv_backward` (the fast kernels on Flex) instead of burn's generic
//! conv backward.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
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

impl<B: UnetBackend, C: CheckpointStrategy> UnetBackend for Autodiff<B, C> {
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
