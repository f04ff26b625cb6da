"""The U-Net of Ronneberger, Fischer and Brox (2015) for biomedical image segmentation.

A Rust library with numpy in and out::

    import unet
    model = unet.Model.load("isbi2012-em")      # a built-in model, or a .safetensors file
    probs = model.predict(image)                # (classes, H, W) float32
    cells = model.segment(image)                # (H, W) int32 instance labels

Train on your own images (2D arrays, or (H, W, C) for colour) and instance labels::

    images, labels = unet.synth(4, size=256, seed=0)
    model = unet.train(images, labels, steps=200, width=8)

The network runs on every core, without the GIL; ``unet.set_threads(n)`` limits it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional, Sequence, Union

from . import _unet
from ._unet import Model, get_threads, models, set_threads, synth

__all__ = ["Model", "train", "evaluate", "synth", "models", "set_threads", "get_threads", "METRICS"]

#: The metrics of ``evaluate`` (and ``unet eval``), in table order.
METRICS = (
    "pixel_error",
    "pixel_fscore_error",
    "rand_error",
    "v_rand",
    "v_info",
    "v_info_unthinned",
    "warping_error",
    "splits_mergers_error",
    "iou",
    "dice",
    "seg",
    "ap",
)


def _tqdm_progress(steps: int) -> Optional[Callable[[dict], None]]:
    """A progress callback drawing a tqdm bar, when tqdm is installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    bar = tqdm(total=steps, desc="training", unit="step")

    def report(p: dict) -> None:
        bar.n = p["step"]
        post = {"loss": f"{p['loss']:.3f}"}
        if "validation" in p:
            post["v_rand"] = f"{p['validation']['v_rand']:.3f}"
        bar.set_postfix(post, refresh=False)
        bar.refresh()
        if p["step"] >= p["steps"]:
            bar.close()

    return report


def train(
    images: Any,
    labels: Any,
    out: Optional[Union[str, os.PathLike]] = None,
    *,
    resume: bool = False,
    val_images: Any = None,
    val_labels: Any = None,
    progress: Union[Callable[[dict], None], bool, None] = True,
    **config: Any,
) -> Model:
    """Trains a U-Net and returns it.

    images: a list of images (2D arrays, or (H, W, C) for colour) or an (N, H, W) stack, of
        uint8, uint16, float32 or float64.
    labels: one label image per image, integer arrays: instance ids (0 = background) or
        binary masks.
    out: a run folder (config, metrics.csv, curves, checkpoints, best/last model files),
        as ``unet train --out`` writes it; it must be empty or missing unless ``resume``.
    resume: continue the run in ``out`` from its checkpoint (bit-exact).
    val_images, val_labels: validation pairs, scored every ``validate_every`` steps.
    progress: a callable given a dict (step, steps, loss, lr, improved and, after a
        validation, validation) after every step; True draws a tqdm bar when tqdm is
        installed; False or None reports nothing.
    config: any key of ``unet train``'s TOML configuration, e.g. ``steps=2000, width=64,
        lr=1e-3, tile=572, seed=0, augment={"elastic_sigma": 10}``.

    Ctrl-C stops training after the current step, writes a checkpoint when ``out`` is
    given, and raises KeyboardInterrupt.
    """
    if progress is True:
        progress = _tqdm_progress(int(config.get("steps", 2000)))
    elif progress is False:
        progress = None
    for key in ("images", "labels", "val_images", "val_labels"):
        if key in config:
            raise ValueError(f"{key}: pass arrays as arguments, not as a training option")
    return _unet.train(
        images,
        labels,
        json.dumps(config),
        out=None if out is None else os.fspath(out),
        resume=resume,
        val_images=val_images,
        val_labels=val_labels,
        progress=progress,
    )


def evaluate(
    pred: Any,
    truth: Any,
    metrics: Optional[Sequence[str]] = None,
    thresholds: Optional[Sequence[float]] = None,
) -> dict:
    """Scores predictions against ground truth as ``unet eval --json`` does.

    pred: probability maps (float arrays in [0, 1], 1 = cell), binary masks or instance
        labels (integer arrays); one (H, W) array, an (N, H, W) stack or a list.
    truth: instance labels or binary masks (integer arrays), one per predicted image.
    metrics: names from ``unet.METRICS`` (default: all).
    thresholds: binarisation thresholds of probability maps (default 0, 0.1, ..., 1;
        0 for binary predictions); each metric is reported at its best one.

    Returns the same document as ``unet eval --json``: ``mean`` (the stack's scores),
    ``best_thresholds``, ``images`` (per image) and ``thresholds`` (the whole table).
    """
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",")]
    return json.loads(
        _unet.evaluate_json(
            pred,
            truth,
            metrics=None if metrics is None else list(metrics),
            thresholds=None if thresholds is None else [float(t) for t in thresholds],
        )
    )
