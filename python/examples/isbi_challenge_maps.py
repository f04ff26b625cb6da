"""The ISBI 2012 test stack's probability maps in the challenge's format: one 32-bit float
TIFF of 30 pages, 512 x 512, values in [0, 1], 1 = cell interior (the organisers' scripts
read it so), predicted by a unet model (default: the built-in isbi2012-em, with 8-fold
test-time augmentation).

    python python/examples/isbi_challenge_maps.py ../shared/data/isbi2012/test/images \\
        runs/isbi2012-test-probabilities.tif

Needs the unet package (pip install ./python) and tifffile and pillow.
"""

import argparse
import pathlib
import time

import numpy as np
import tifffile
from PIL import Image

import unet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=pathlib.Path, help="folder of the 30 test slices (00.png ... 29.png)")
    ap.add_argument("out", type=pathlib.Path, help="the stack to write (.tif)")
    ap.add_argument("--model", default="isbi2012-em", help="model file or built-in name")
    ap.add_argument("--no-tta", action="store_true", help="one prediction per slice instead of 8")
    args = ap.parse_args()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))
    if not files:
        raise SystemExit(f"{args.images}: no images")
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists already; remove it or choose another name")
    model = unet.Model.load(args.model)
    stack = np.asarray([np.asarray(Image.open(f)) for f in files])
    t0 = time.perf_counter()
    cell = model.predict(stack, tta=not args.no_tta)[:, 1]  # (N, H, W): probability of cell
    took = time.perf_counter() - t0
    tmp = args.out.with_name(args.out.name + ".partial")
    tifffile.imwrite(tmp, cell.astype(np.float32), photometric="minisblack")
    tmp.replace(args.out)
    print(f"{len(files)} slices in {took:.1f} s -> {args.out} (float32, 1 = cell interior)")


if __name__ == "__main__":
    main()
