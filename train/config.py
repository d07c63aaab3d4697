"""Everything that decides a training run, each default and its meaning stated once (the CLI shows them).

No TensorFlow here: `edgetl --help` reads these without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from edgetl.backbones import BACKBONES, MOBILENET_V2, backbone_spec
from edgetl.errors import EdgetlError
from edgetl.images import RESIZE_POLICIES, check_resize
from edgetl.options import setting

Strategy = Literal["auto", "default", "mirrored", "multi-worker"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass
class TrainConfig:
    """Recorded in edgetl.json (`training`), and in the partial run so that --resume continues alike."""

    backbone: str = setting(MOBILENET_V2.name, f"Backbone: {' or '.join(BACKBONES)}.")
    alpha: float = setting(1.0, f"MobileNetV2 width: {', '.join(map(str, MOBILENET_V2.widths))}.")
    size: int = setting(224, "Input size in pixels (square), 96–224 typical.")
    weights: str = setting("imagenet", "imagenet (Keras download/cache), none, or PATH to a .h5 file.")
    resize: str = setting("stretch", f"How photos become square: {' or '.join(RESIZE_POLICIES)} (centre square).")
    batch_size: int = setting(32, "Images per batch.")
    head_epochs: int = setting(20, "Phase 1 epochs (frozen backbone); 0 skips it.")
    finetune_epochs: int = setting(8, "Phase 2 epochs (top layers unfrozen); 0 skips it.")
    head_lr: float = setting(1e-3, "Phase 1 learning rate (cosine decay).")
    finetune_lr: float = setting(1e-4, "Phase 2 learning rate (cosine decay).")
    unfreeze_from: str | None = setting(None, "Fine-tune from this block, e.g. block_12 (default: top third).")
    unfreeze_layers: int | None = setting(None, "Fine-tune the top N backbone layers instead.")
    dropout: float = setting(0.2, "Dropout before the classifier.")
    label_smoothing: float = setting(0.1, "Label smoothing (0 disables).")
    augment: bool = setting(True, "Random flip/rotate/zoom/shift/contrast/brightness.")
    feature_cache: bool = setting(True, "Phase 1 on cached backbone features (fast).")
    finetune_views: int = setting(
        1, "Augmented copies per image cached below the unfrozen layers for phase 2 (fast); 0: end to end."
    )
    patience: int = setting(4, "Early-stopping patience in epochs (best weights kept).")
    seed: int = setting(42, "Seed for the split, initialisation and shuffling.")
    val_fraction: float = setting(0.15, "Validation share when the folder is not pre-split.")
    test_fraction: float = setting(0.15, "Test share when the folder is not pre-split.")
    mixed_precision: bool | None = setting(None, "float16 compute (default: on with a GPU).")
    strategy: Strategy = setting("auto", f"Distribution: {', '.join(STRATEGIES)} (multi-worker reads TF_CONFIG).")
    deterministic: bool = setting(True, "Same seed and data give the same model (TensorFlow op determinism).")
    max_latency: float | None = setting(
        None, "Latency budget, ms per image (int8, on the profiled device): train the most accurate model within it."
    )
    device_profile: str | None = setting(
        None, "With --max-latency: bench.json of `edgetl bench PROFILE` on the device (default: this machine's)."
    )
    parent: str | None = setting(
        None,
        "A run on this dataset before: its test and validation photos stay in those splits (same yardstick); "
        "--model, --alpha, --size and --resize not given are its.",
    )
    other: str | None = setting(
        None,
        "Photos of none of the classes (the empty scene, passers-by): 'unknown' is fitted to reject them "
        "(default: DATA/__other__ when it holds photos).",
    )
    warm_start: bool = setting(
        False, "With --from: start from that run's weights (same backbone and width; new classes get fresh rows)."
    )

    def __post_init__(self) -> None:
        backbone_spec(self.backbone)  # an unknown name fails here, before any work
        check_resize(self.resize)
        if not 32 <= self.size <= 1024:
            raise EdgetlError(f"--size {self.size} is out of range.", "Use 32–1024 pixels; 96–224 suits MobileNetV2.")
        if self.batch_size < 1 or min(self.head_epochs, self.finetune_epochs, self.finetune_views) < 0:
            raise EdgetlError("--batch-size must be at least 1; epochs and views not negative.")
        if self.max_latency is not None and self.max_latency <= 0:
            raise EdgetlError(f"--max-latency {self.max_latency} is not a latency.", "Give milliseconds, e.g. 20.")
        if self.device_profile is not None and self.max_latency is None:
            raise EdgetlError("--device-profile needs --max-latency.", "Add --max-latency MS (the budget per image).")
        if self.parent and self.warm_start and self.max_latency is not None:
            raise EdgetlError(
                "--warm-start keeps the --from run's backbone; --max-latency would choose another.",
                "Pass --no-warm-start to search on the same split, or drop --max-latency.",
            )
        if self.strategy not in STRATEGIES:
            raise EdgetlError(f"Unknown --strategy '{self.strategy}'.", f"Use one of: {', '.join(STRATEGIES)}.")
