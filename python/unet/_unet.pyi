"""Type stubs of the extension module unet._unet."""

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

class Model:
    """A trained U-Net: its network, configuration and input normalisation."""

    @staticmethod
    def load(path: str) -> Model:
        """A model file (.safetensors from `unet train`) or a built-in model by name."""
    @property
    def config(self) -> dict: ...
    def predict(self, image: npt.ArrayLike, tta: bool = False, tile: Optional[int] = None) -> npt.NDArray[np.float32]:
        """Class probabilities: (classes, H, W) for one image, (N, classes, H, W) for a stack."""
    def segment(
        self,
        image: npt.ArrayLike,
        tta: bool = False,
        tile: Optional[int] = None,
        threshold: Optional[float] = None,
        min_size: int = 1,
    ) -> npt.NDArray[np.int32]:
        """Instance labels: (H, W) int32 for one image (0 = background), (N, H, W) for a stack."""
    def save(self, path: str, overwrite: bool = False) -> None: ...

def models() -> list[str]: ...
def set_threads(n: int) -> None: ...
def get_threads() -> int: ...
def synth(n: int, size: int = 256, seed: int = 0, bit_depth: int = 8) -> Tuple[npt.NDArray[Any], npt.NDArray[np.int32]]: ...
def train(
    images: Any,
    labels: Any,
    config_json: str,
    out: Optional[str] = None,
    resume: bool = False,
    val_images: Any = None,
    val_labels: Any = None,
    progress: Optional[Callable[[dict], None]] = None,
) -> Model: ...
def evaluate_json(
    pred: Any, truth: Any, metrics: Optional[Sequence[str]] = None, thresholds: Optional[Sequence[float]] = None
) -> str: ...
