#!/usr/bin/env python3
"""Builds the PyTorch parity fixtures for the Rust network (tests/fixtures/parity_*.safetensors).

Uses the PyTorch twin of our network, ../shared/bench/torch_unet.py, at width 4 with random
weights and random (non-zero) biases, runs it on random input, and stores the weights under
our parameter names together with `input` and `output`. The Rust test
crates/unet-nn/tests/parity.rs loads the weights into our model and must reproduce
`output` to 1e-4. CI uses the committed fixtures and does not need torch.

    pip install torch safetensors numpy
    python3 tests/reference/make_fixture.py [--shared ../shared]
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

CASES = [
    # name, in_channels, classes, height, width, seed
    ("c1k2_188", 1, 2, 188, 188, 1),
    ("c2k3_204x236", 2, 3, 204, 236, 2),
]


def our_names(net):
    """Maps the twin's state_dict keys to ours (see crates/unet-nn/src/params.rs)."""
    out = {}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        if parts[0] == "down":  # down.{level}.{0|2}.{weight|bias}
            conv = {"0": "conv1", "2": "conv2"}[parts[2]]
            name = f"down.{parts[1]}.{conv}.{parts[3]}"
        elif parts[0] == "ups":  # ups.{i}.{weight|bias}
            name = f"upconv.{parts[1]}.{parts[2]}"
        elif parts[0] == "upconv":  # upconv.{i}.{0|2}.{weight|bias}
            conv = {"0": "conv1", "2": "conv2"}[parts[2]]
            name = f"up.{parts[1]}.{conv}.{parts[3]}"
        elif parts[0] == "head":
            name = f"head.{parts[1]}"
        else:
            raise KeyError(key)
        out[name] = value.detach().contiguous().clone()
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.shared, "bench"))
    from torch_unet import UNet  # the PyTorch twin

    for name, cin, classes, h, w, seed in CASES:
        torch.manual_seed(seed)
        net = UNet(cin=cin, classes=classes, width=4, depth=4).eval()
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() == 1:
                    p.normal_(0.0, 0.1)  # non-zero biases, so bias handling is checked too
        x = torch.randn(1, cin, h, w)
        with torch.no_grad():
            y = net(x)
        tensors = our_names(net)
        tensors["input"] = x.contiguous()
        tensors["output"] = y.contiguous()
        config = {"in_channels": cin, "classes": classes, "depth": 4, "width": 4,
                  "padding": "valid", "batch_norm": False, "dropout": 0.5}
        path = os.path.join(a.out, f"parity_{name}.safetensors")
        save_file(tensors, path, metadata={"config": json.dumps(config), "torch": torch.__version__})
        print(f"{path}: input {list(x.shape)} -> output {list(y.shape)}")


if __name__ == "__main__":
    main()
