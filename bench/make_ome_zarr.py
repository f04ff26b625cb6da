"""Writes a large OME-Zarr test image (NGFF 0.4 on Zarr v2, blosc-compressed uint8, 1024^2
chunks) made of the 30 ISBI 2012 test slices tiled with mirroring, chunk by chunk, so that
an image of any size is made in bounded memory:

    python bench/make_ome_zarr.py SIZE OUT.ome.zarr [ISBI_TEST_IMAGES_DIR]

Used by bench/zarr_memory.sh (peak memory of `unet predict` on OME-Zarr inputs) and
tests/slurm_cluster.sh (an array job on a real Slurm).
"""

import json
import os
import sys

import numpy as np
import zarr
from PIL import Image

size = int(sys.argv[1])
out = sys.argv[2]
src = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "isbi2012", "test", "images")
slices = [np.asarray(Image.open(os.path.join(src, f))) for f in sorted(os.listdir(src)) if f.endswith((".png", ".tif"))]
h, w = slices[0].shape
chunk = 1024
root = zarr.open_group(out, mode="w")
arr = root.create_dataset("0", shape=(size, size), chunks=(chunk, chunk), dtype="uint8")
for y0 in range(0, size, chunk):
    for x0 in range(0, size, chunk):
        ys, xs = np.arange(y0, min(y0 + chunk, size)), np.arange(x0, min(x0 + chunk, size))
        block = np.empty((len(ys), len(xs)), np.uint8)
        for ty in range(ys[0] // h, ys[-1] // h + 1):
            for tx in range(xs[0] // w, xs[-1] // w + 1):
                s = slices[(ty * 7 + tx * 3) % len(slices)]
                if ty % 2:
                    s = s[::-1]
                if tx % 2:
                    s = s[:, ::-1]
                yy = ys[(ys // h) == ty]
                xx = xs[(xs // w) == tx]
                block[np.ix_(yy - y0, xx - x0)] = s[np.ix_(yy % h, xx % w)]
        arr[y0:y0 + len(ys), x0:x0 + len(xs)] = block
root.attrs["multiscales"] = [{
    "version": "0.4",
    "name": os.path.basename(out),
    "axes": [{"name": "y", "type": "space", "unit": "nanometer"}, {"name": "x", "type": "space", "unit": "nanometer"}],
    "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [4.0, 4.0]}]}],
}]
print(json.dumps({"path": out, "size": size}))
