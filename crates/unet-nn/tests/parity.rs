//! Parity with the PyTorch twin (`../shared/bench/torch_unet.py`): weights, input and output
//! from `tests/reference/make_fixture.py`; our network must reproduce the output to 1e-4.

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use unet_nn::{CpuBackend, UNetConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn check(name: &str) {
    let path = fixture(name);
    let (meta, tensors) = unet_nn::read_safetensors(&path).expect("fixture readable");
    let config: UNetConfig = serde_json::from_str(&meta["config"]).expect("config");
    let take = |n: &str| tensors.iter().find(|t| t.name == n).expect(n).clone();
    let (input, output) = (take("input"), take("output"));
    let weights: Vec<_> = tensors.iter().filter(|t| t.name != "input" && t.name != "output").cloned().collect();
    let device = Default::default();
    let model = config.init::<CpuBackend>(7, &device).unwrap().load_named_tensors(&weights).unwrap();
    let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(input.data, input.shape.clone()), &device);
    let y = model.forward(x);
    assert_eq!(y.dims().to_vec(), output.shape, "{name}: output shape");
    let got = y.into_data().to_vec::<f32>().unwrap();
    let scale = output.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    let worst = got.iter().zip(&output.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4 * scale, "{name}: max |ours - torch| = {worst} (scale {scale})");
}

#[test]
fn matches_pytorch_one_channel_two_classes() {
    check("parity_c1k2_188.safetensors");
}

#[test]
fn matches_pytorch_two_channels_three_classes_non_square() {
    check("parity_c2k3_204x236.safetensors");
}
