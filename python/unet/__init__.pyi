"""Type stubs of the unet package."""

import os
from typing import Any, Callable, Optional, Sequence, Union

from ._unet import Model as Model
from ._unet import get_threads as get_threads
from ._unet import models as models
from ._unet import set_threads as set_threads
from ._unet import synth as synth

METRICS: tuple[str, ...]

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
) -> Model: ...
def evaluate(
    pred: Any, truth: Any, metrics: Optional[Sequence[str]] = None, thresholds: Optional[Sequence[float]] = None
) -> dict: ...
