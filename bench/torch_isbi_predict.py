#!/usr/bin/env python3
"""Probability maps of a model trained by the PyTorch reference (../shared/bench/torch_isbi_train.py),
made with the reference's own overlap-tile `predict` (plain or 8-fold TTA), written as float32
TIFFs `<stem>_prob.tif` (probability of cell) so that `unet eval` scores both trainers alike.

    python3 bench/torch_isbi_predict.py --model runs/ref/model.pt --width 16 \
        --images isbi/val/images --out ref-pred [--tta] [--threads 2]
"""
import argparse, glob, os, sys

import numpy as np
import torch
from PIL import Image

SHARED = os.environ.get("UNET_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))
import torch_isbi_train as ref  # noqa: E402
from torch_unet import UNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = UNet(width=a.width)
    net.load_state_dict(torch.load(a.model))
    net.eval()
    os.makedirs(a.out, exist_ok=True)
    for f in sorted(glob.glob(os.path.join(a.images, "*.png"))):
        p = ref.predict(net, np.array(Image.open(f)), tta=a.tta).astype(np.float32)
        stem = os.path.splitext(os.path.basename(f))[0]
        Image.fromarray(p, mode="F").save(os.path.join(a.out, stem + "_prob.tif"))
        print(stem)


if __name__ == "__main__":
    main()
