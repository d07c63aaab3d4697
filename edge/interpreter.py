"""Load a `.tflite` model with whichever TFLite interpreter is installed, and run it on pixels.

Order of preference: LiteRT (`ai-edge-litert`, the maintained runtime, ~2× faster than
`tf.lite.Interpreter` on MobileNetV2 int8), then `tflite-runtime` (older Pis, NumPy 1 only),
then TensorFlow's own interpreter if TensorFlow happens to be installed. The conversion check,
the camera and the benchmarks all go through `ImageClassifierModel`, so the numbers a user sees
before deploying come from the code that runs on the device.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError

BACKENDS: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence what TFLite's C++ prints straight to the file descriptors ("INFO: Created … XNNPACK …")."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def interpreter_class(backend: str = "auto") -> tuple[str, Any]:
    """Return (backend name, Interpreter class); `auto` takes the first one that imports."""
    if backend != "auto" and backend not in BACKENDS:
        raise EdgetlError(f"Unknown backend '{backend}'.", f"Use one of: auto, {', '.join(BACKENDS)}.")
    names = list(BACKENDS) if backend == "auto" else [backend]
    failures = []
    for name in names:
        try:
            module = importlib.import_module(BACKENDS[name])
            return name, module.Interpreter
        except Exception as error:  # ImportError, or tflite-runtime failing to load under NumPy 2
            failures.append(f"{name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    raise EdgetlError(
        f"No TFLite interpreter could be loaded ({'; '.join(failures)}).",
        'Install one: pip install "edgetl[edge]" (ai-edge-litert).',
    )


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int

    @property
    def active(self) -> bool:
        return self.scale != 0.0


class ImageClassifierModel:
    """One image in (NHWC, RGB), one score vector out; quantized I/O handled from the tensors' own parameters."""

    def __init__(
        self,
        model: Path | bytes,
        *,
        threads: int | None = None,
        backend: str = "auto",
        normalization: tuple[float | list[float], float | list[float]] | None = (0.0, 1.0),
        name: str | None = None,
    ) -> None:
        """`normalization` = (mean, std): the input tensor's real value is (pixel - mean) / std (edgetl: 0, 1).
        `name` is what errors call the model when it is given as bytes (default: its path, or "the model").

        None means "raw pixels" by convention: float inputs get 0–255, quantized inputs the pixel
        shifted into the integer type's range, which is how published quantized classifiers are fed.
        """
        self.backend, interpreter = interpreter_class(backend)
        source = {"model_content": bytes(model)} if isinstance(model, bytes | bytearray) else {"model_path": str(model)}
        try:
            with quiet_native_output():
                self.interpreter = interpreter(**source, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            name = name or source.get("model_path", "the model")
            path = Path(source.get("model_path", ""))
            empty = (
                not source["model_content"] if "model_content" in source else path.is_file() and not path.stat().st_size
            )
            why = "it is empty: 0 bytes" if empty else str(error).splitlines()[0]  # LiteRT: "must be specified"
            raise EdgetlError(
                f"{name} could not be loaded as a TFLite model ({why}).",
                "Pass a .tflite file written by `edgetl convert` or another TFLite converter.",
            ) from None
        self.threads = threads
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][-1] != 3:
            shapes = ", ".join(str(d["shape"].tolist()) for d in inputs)
            raise EdgetlError(
                f"The model's input is {shapes}, not one image tensor [1, height, width, 3].",
                "edgetl runs image classifiers with a single RGB image input.",
            )
        ood = [d for d in outputs if list(d["shape"]) == [1, 1]]
        scores = [d for d in outputs if len(d["shape"]) == 2 and d["shape"][1] > 1]
        if len(scores) != 1 or len(outputs) - len(scores) != len(ood) or len(ood) > 1:
            shapes = ", ".join(str(d["shape"].tolist()) for d in outputs)
            raise EdgetlError(
                f"The model's output is {shapes}, not one score vector [1, classes].",
                "edgetl runs image classifiers with a single score output (and an optional OOD score [1, 1]).",
            )
        self._input, self._output = inputs[0], scores[0]
        self._ood = ood[0] if ood else None  # edgetl models: out-of-distribution score, higher = less familiar
        self.height, self.width = int(self._input["shape"][1]), int(self._input["shape"][2])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        self.input_quantization = Quantization(*self._input["quantization"])
        self.output_quantization = Quantization(*self._output["quantization"])
        self.classes = int(self._output["shape"][1])
        self.set_normalization(normalization)

    def set_normalization(self, normalization: tuple | None) -> None:
        """What the input tensor's real value is, as (mean, std) on pixels; None for the raw-pixel convention."""
        self._transform = self._input_transform(normalization)

    def _input_transform(self, normalization) -> tuple[np.ndarray, np.ndarray] | None:
        """pixel → input tensor as `pixel * a + b` (None: pass uint8 pixels through untouched)."""
        quant, integer = self.input_quantization, np.issubdtype(self.input_dtype, np.integer)
        if normalization is None:
            if integer:
                offset = float(np.iinfo(self.input_dtype).min)
                return None if offset == 0 else (np.float32(1.0), np.float32(offset))
            return (np.float32(1.0), np.float32(0.0))
        mean, std = (np.asarray(v, dtype=np.float32) for v in normalization)
        scale, shift = 1.0 / std, -mean / std  # real value = pixel * scale + shift
        if integer and quant.active:
            scale, shift = scale / quant.scale, shift / quant.scale + quant.zero_point
        identity = np.allclose(scale, 1.0, atol=1e-3) and np.allclose(shift, 0.0, atol=0.51)
        if identity and self.input_dtype == np.uint8:
            return None
        return scale.astype(np.float32), shift.astype(np.float32)

    def input_tensor(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 pixels → the input tensor: a no-op for edgetl uint8 models, else one affine map."""
        if self._transform is None:
            return rgb[None]
        scale, shift = self._transform
        values = rgb.astype(np.float32) * scale + shift
        if np.issubdtype(self.input_dtype, np.integer):
            info = np.iinfo(self.input_dtype)
            values = np.clip(np.round(values), info.min, info.max)
        return values.astype(self.input_dtype)[None]

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        """Class scores (float32) for one HxWx3 uint8 RGB image already at the model's size."""
        return self.dequantize(self.invoke(rgb))[0]

    def invoke(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw output tensors (scores, OOD score or None) for one image, copied: the least work beside
        `invoke()` itself, for a loop that leaves the rest (`dequantize`) to another thread."""
        self.interpreter.set_tensor(self._input["index"], self.input_tensor(rgb))
        self.interpreter.invoke()
        ood = None if self._ood is None else self.interpreter.get_tensor(self._ood["index"])
        return self.interpreter.get_tensor(self._output["index"]), ood

    def dequantize(self, raw: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, float | None]:
        """Raw outputs of `invoke` → (float32 class scores, OOD score or None)."""
        scores, ood = raw
        return self._real(scores[0], self._output), None if ood is None else float(self._real(ood[0], self._ood)[0])

    def ops_details(self) -> list[dict]:
        """The ops of the model's execution plan (name, inputs, outputs), delegate nodes included.

        LiteRT exposes the plan only through a private method; this module is the one place that may touch
        the interpreter's internals, so that a LiteRT upgrade that renames it breaks here and nowhere else."""
        return self.interpreter._get_ops_details()  # noqa: SLF001

    @property
    def has_ood_score(self) -> bool:
        return self._ood is not None

    def ood_score(self) -> float | None:
        """The out-of-distribution score of the last `scores()` call; None when the model has none."""
        return None if self._ood is None else float(self._read(self._ood)[0])

    def _read(self, detail: dict) -> np.ndarray:
        return self._real(self.interpreter.get_tensor(detail["index"])[0], detail)

    @staticmethod
    def _real(raw: np.ndarray, detail: dict) -> np.ndarray:
        quant = Quantization(*detail["quantization"])
        if quant.active:
            return (raw.astype(np.float32) - quant.zero_point) * quant.scale
        return raw.astype(np.float32)

    def scores_batch(self, images: np.ndarray) -> np.ndarray:
        """Scores for N images, one invoke each (as on the device)."""
        return np.stack([self.scores(image) for image in images]) if len(images) else np.zeros((0, self.classes))
