"""The Python side of bench/python_overhead.sh: what `unet predict IMAGE --out DIR
--no-overlay --tile 572` does, through the Python package."""

import pathlib
import sys

import numpy as np
import tifffile
from PIL import Image

import unet

image_path, out, threads = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
unet.set_threads(threads)
out.mkdir(parents=True)
model = unet.Model.load("isbi2012-em")
image = np.asarray(Image.open(image_path))
probs = model.predict(image, tile=572)
stem = image_path.stem
tifffile.imwrite(out / f"{stem}_prob.tif", probs[1])
Image.fromarray((probs.argmax(0) * 255).astype(np.uint8)).save(out / f"{stem}_mask.png")
