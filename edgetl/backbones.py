"""Every fact edgetl keeps about a backbone, in one `BackboneSpec` each (MediaPipe Model Maker's `ModelSpec`).

Training builds it, the device profile times its widths and sizes, edgetl.json records its
preprocessing: all from here. Adding a backbone is one entry, e.g. for MobileNetV3Small::

    MOBILENET_V3_SMALL = BackboneSpec(
        name="mobilenet_v3_small",
        keras_name="MobileNetV3Small",
        widths=(0.75, 1.0),
        unfreeze_from="expanded_conv_6",
        weights_file="weights_mobilenet_v3_small_224_{alpha}_float_no_top_v2.h5",
        inside_model="Keras MobileNetV3 rescaling",  # mean 0, std 1: it takes raw pixels
        profile_sizes=(96, 128, 160, 192, 224),
    )

plus its name in `BACKBONES` and a test that builds it. No TensorFlow here: `edgetl --help` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetl.errors import EdgetlError


@dataclass(frozen=True)
class BackboneSpec:
    """One keras.applications backbone, as edgetl uses it."""

    name: str
    """The --model value, recorded in edgetl.json."""
    keras_name: str
    """Its constructor in keras.applications."""
    widths: tuple[float, ...]
    """Width multipliers (--alpha) it has ImageNet weights for; (1.0,) when it has none to choose."""
    unfreeze_from: str
    """First block fine-tuning trains by default: about the top third of the backbone."""
    weights_file: str
    """Keras' cached ImageNet file, with {alpha} and {rows} filled in."""
    inside_model: str
    """How raw 0–255 pixels become its input, in words (edgetl.json records it)."""
    profile_sizes: tuple[int, ...]
    """Input sizes `edgetl profile` times for the latency search."""
    weight_sizes: tuple[int, ...] = ()
    """Input sizes Keras has a file for ({rows}); the weights fit any size, so another size's file serves."""
    mean: float = 0.0
    std: float = 1.0
    """Its input = (pixel - mean) / std, a layer edgetl puts in front; 0 and 1: it rescales inside itself."""

    @property
    def has_width(self) -> bool:
        return len(self.widths) > 1

    def check_width(self, alpha: float) -> None:
        """--alpha must be one of its widths; a backbone with no widths to choose ignores it."""
        if self.has_width and alpha not in self.widths:
            raise EdgetlError(f"{self.keras_name} has no alpha {alpha}.", f"Use one of {list(self.widths)}.")

    def weights_files(self, alpha: float, size: int) -> list[str]:
        """Keras' file names for these ImageNet weights, the one Keras itself loads for `size` first."""
        rows = [size if size in self.weight_sizes else 224]
        rows += [other for other in sorted(self.weight_sizes, reverse=True) if other != rows[0]]
        return list(dict.fromkeys(self.weights_file.format(alpha=float(alpha), rows=r) for r in rows))

    def preprocessing(self) -> dict:
        """What the model does to raw pixels, as edgetl.json records it."""
        return {"inside_model": self.inside_model, "mean": [self.mean] * 3, "std": [self.std] * 3}

    def describe(self, alpha: float, size: int) -> str:
        return f"{self.name}{f' {alpha}' if self.has_width else ''} @ {size} px"

    def file_stem(self, alpha: float, size: int) -> str:
        return f"{self.name}{f'_{alpha}' if self.has_width else ''}_{size}"


MOBILENET_V2 = BackboneSpec(
    name="mobilenet_v2",
    keras_name="MobileNetV2",
    widths=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    unfreeze_from="block_12",
    weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5",
    inside_model="x / 127.5 - 1",  # [-1, 1], not the classic tutorial's 1/255
    profile_sizes=(96, 128, 160, 192, 224),
    weight_sizes=(96, 128, 160, 192, 224),
    mean=127.5,
    std=127.5,
)
EFFICIENTNET_B0 = BackboneSpec(
    name="efficientnet_b0",
    keras_name="EfficientNetB0",
    widths=(1.0,),
    unfreeze_from="block6a",
    weights_file="efficientnetb0_notop.h5",
    inside_model="Keras EfficientNet rescaling + normalization",
    profile_sizes=(224,),
)
BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in (MOBILENET_V2, EFFICIENTNET_B0)}


def backbone_spec(name: str) -> BackboneSpec:
    """The spec for --model NAME; an unknown name is one clear error."""
    if name not in BACKBONES:
        raise EdgetlError(f"Unknown --model '{name}'.", f"Use one of: {', '.join(BACKBONES)}.")
    return BACKBONES[name]
