"""The run directory: the one folder every stage reads and adds to.

`edgetl.json` is the single source of truth (labels, input contract, backbone, split, versions).
It is written last, so a run directory that has it is complete; training works in `NAME.partial/`
and renames it into place at the end. No TensorFlow here: the edge reads run directories too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.open_world_card import OpenWorldCard

FORMAT_VERSION = 1
METADATA_FILE = "edgetl.json"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.keras"
SPLIT_DIR = "split"
SPLITS: tuple[str, ...] = ("train", "validation", "test")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a Pi service user must read models
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def json_text(value: Any) -> str:
    """How every JSON file edgetl writes is laid out."""
    return json.dumps(value, indent=2, sort_keys=False) + "\n"


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, json_text(value))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgetlError(f"{path} does not exist.", "Check the path.") from None
    except json.JSONDecodeError as error:
        raise EdgetlError(
            f"{path} is not valid JSON ({error.msg}).", "Restore it or re-run the stage that writes it."
        ) from None


def partial_dir(run_dir: Path) -> Path:
    """Where an unfinished run lives until it is complete."""
    return run_dir.with_name(run_dir.name + ".partial")


def refuse_existing(path: Path, other: str, *, force: bool | None = None) -> None:
    """The one rule for an output that exists: replaced only with --force, for commands that have it (`force`
    None: the command has no --force); `other` is the alternative the hint offers ("--out another folder")."""
    if path.exists() and not force:
        how = "Pass --force to replace it, or" if force is not None else "Remove it first, or"
        raise EdgetlError(f"{path} already exists.", f"{how} {other}.")


def check_output(run_dir: Path, *, force: bool, resume: bool) -> None:
    """Refuse, before any work, to clobber a run or to resume one that is not there."""
    work = partial_dir(run_dir)
    refuse_existing(run_dir, "choose another --out", force=force)
    if resume and not (work / "state.json").exists():
        raise EdgetlError(f"There is no interrupted run at {work} to resume.", "Drop --resume to start a new run.")
    if not resume and work.exists() and not force:
        raise EdgetlError(
            f"An interrupted run is at {work}.", "Pass --resume to continue it, or --force to start over."
        )


def check_results_file(path: Path, option: str) -> None:
    """Refuse, before any work, a results file that cannot be written: its folder must exist and be writable
    (one behaviour for every command: no folders made on the user's behalf from a mistyped path)."""
    folder = path.parent
    if not folder.is_dir():
        raise EdgetlError(f"{option} {path}: the folder {folder} does not exist.", "Create it, or choose another path.")
    if not os.access(folder, os.W_OK):
        raise EdgetlError(f"{option} {path}: the folder {folder} is not writable.", "Choose a folder you can write to.")


def prepare_output(run_dir: Path, *, force: bool, resume: bool) -> Path:
    """Check that training may write `run_dir`; return the partial folder to work in."""
    check_output(run_dir, force=force, resume=resume)
    work = partial_dir(run_dir)
    if not resume:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    return work


def publish(work: Path, run_dir: Path) -> None:
    """Move a finished partial run into place, replacing an old run only now that the new one is whole."""
    old = run_dir.with_name(run_dir.name + ".old")
    if run_dir.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(run_dir, old)
    os.replace(work, run_dir)
    if old.exists():
        shutil.rmtree(old)


def labels_text(labels: list[str]) -> str:
    """A labels file's text: one class name per line, in the model's output order."""
    return "".join(f"{label}\n" for label in labels)


def parse_labels(text: str) -> list[str]:
    """Class names from a labels file's text: one per line, blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def require_file(path: Path, what: str, hint: str) -> None:
    """One clear error unless `path` is a regular file with content: missing, a folder, a FIFO, device or
    socket (reading a FIFO would wait forever for a writer), or empty (a copy that failed)."""
    if path.is_file():
        if path.stat().st_size == 0:
            raise EdgetlError(f"{what} {path} is empty (0 bytes).", hint)
        return
    if path.is_dir():
        raise EdgetlError(f"{what} {path} is a folder, not a file.", hint)
    if path.exists():
        raise EdgetlError(f"{what} {path} is not a regular file (a FIFO, device or socket).", hint)
    raise EdgetlError(f"{what} {path} does not exist.", hint)


def read_labels(path: Path) -> list[str]:
    """Class names from a labels file (UTF-8, a byte-order mark allowed, one per line).

    A missing, non-UTF-8 or empty file is one clear error naming it, whoever reads it (classify, camera,
    bench, convert)."""
    require_file(path, "Labels file", "Pass a text file with one class name per line.")
    try:
        names = parse_labels(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise EdgetlError(
            f"Labels file {path} is not UTF-8 text (byte {error.start}).",
            "Save it as UTF-8, e.g. iconv -f latin1 -t utf-8 labels.txt > labels-utf8.txt.",
        ) from None
    if not names:
        raise EdgetlError(f"Labels file {path} is empty.", "Put one class name per line, in the model's output order.")
    return names


@dataclass(frozen=True)
class Sample:
    """One image of a dataset and its class index."""

    path: Path
    label: int


def write_split_file(path: Path, root: Path, classes: list[str], samples: list[Sample]) -> None:
    """One split's exact file list, "relative/path<TAB>class" per line, so every stage uses the same images."""
    lines = (f"{sample.path.relative_to(root).as_posix()}\t{classes[sample.label]}\n" for sample in samples)
    write_atomic(path, "".join(lines))


def read_split_file(path: Path, root: Path, classes: list[str]) -> list[Sample]:
    """Read one split list written by `write_split_file`."""
    label_of = {name: i for i, name in enumerate(classes)}
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        relative, tab, name = line.rpartition("\t")
        if not tab:
            raise EdgetlError(
                f"{path}, line {number}: no tab between the file and its class.", "Re-run `edgetl train` to rewrite it."
            )
        if name not in label_of:
            raise EdgetlError(f"{path} names class '{name}', which the run does not have.", "Re-run `edgetl train`.")
        samples.append(Sample(root / relative, label_of[name]))
    return samples


@dataclass(frozen=True)
class DataRecord:
    """Where a run's images are and how they were split (paths in the split files are relative to `root`)."""

    root: Path
    presplit: bool  # the folder came as train/ validation/ test/
    split_files: dict[str, str]  # split → file inside the run directory
    counts: dict[str, int]  # split → images
    parent: str | None = None  # the run whose splits this one kept (--from)
    version: str | None = None  # hash of the sorted (content, class) pairs: the same data, the same version
    other_root: Path | None = None  # photos of none of the classes (split/other.txt's paths are relative to it)


@dataclass(frozen=True)
class ModelRecord:
    """What was trained: the backbone (a name in edgetl/backbones.py), its width, the weights it started from."""

    backbone: str
    alpha: float | None  # None: the backbone has no width to choose
    weights: str  # as asked: imagenet, none or a path
    weights_file: str | None  # what was loaded: a path, "imagenet" (Keras' download) or None (random)
    finetuned_layers: int

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ModelRecord:
        return cls(
            value.get("backbone", ""),
            value.get("alpha"),
            value.get("weights", ""),
            value.get("weights_file"),
            int(value.get("finetuned_layers", 0)),
        )


@dataclass(frozen=True)
class TrainingRecord:
    """How it was trained: every `TrainConfig` setting as it was, and what the machine decided."""

    settings: dict[str, Any]  # TrainConfig's fields by name (this floor does not import train/)
    class_weight: dict[str, float] | None
    mixed_precision: bool
    replicas: int
    seconds: dict[str, float]  # per phase, and "total" across --resume sessions

    @property
    def max_latency(self) -> float | None:
        """The latency budget the run was chosen for (`--max-latency`), if any."""
        return self.settings.get("max_latency")

    def to_json(self) -> dict[str, Any]:
        decided = {"class_weight": self.class_weight, "mixed_precision": self.mixed_precision}
        return {**self.settings, **decided, "replicas": self.replicas, "seconds": self.seconds}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TrainingRecord:
        decided = ("class_weight", "mixed_precision", "replicas", "seconds")
        settings = {key: item for key, item in value.items() if key not in decided}
        return cls(
            settings,
            value.get("class_weight"),
            bool(value.get("mixed_precision", False)),
            int(value.get("replicas", 1)),
            dict(value.get("seconds", {})),
        )


@dataclass(frozen=True)
class RunMetrics:
    """The headline numbers (metrics.json has the rest)."""

    validation_top1: float
    test_top1: float
    test_decided: float | None = None  # in-class test photos decided as a class (not "unknown")
    other_unknown: float | None = None  # test-side "other" photos called "unknown" (None: none given)


_SHAPE: dict[str, type] = {  # edgetl.json's fields that later stages index into, and their JSON types
    "format_version": int,
    "labels": list,
    "input": dict,
    "data": dict,
    "data.root": str,
    "data.presplit": bool,
    "data.split_files": dict,
    "data.counts": dict,
    "model": dict,
    "training": dict,
    "environment": dict,
}
_TYPE_NAMES = {int: "a number", list: "a list", dict: "an object", str: "text", bool: "true or false"}


def _check_shape(meta: Any, path: Path) -> None:
    """One line naming the field when edgetl.json has a value of the wrong JSON type (an edited or damaged
    file), instead of a TypeError from deep inside a stage."""
    if not isinstance(meta, dict):
        raise EdgetlError(f"{path} is not a JSON object.", "Restore it, or re-run `edgetl train`.")
    for key, kind in _SHAPE.items():
        outer, _, inner = key.partition(".")
        value = meta.get(outer) if not inner else (meta.get(outer) or {}).get(inner)
        if value is not None and not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EdgetlError(
                f"{path}: '{key}' should be {_TYPE_NAMES[kind]}, not {type(value).__name__}.",
                "Restore it, or re-run `edgetl train`.",
            )
    if not all(isinstance(label, str) for label in meta.get("labels") or []):
        raise EdgetlError(f"{path}: 'labels' should be a list of class names.", "Restore it, or re-run `edgetl train`.")


@dataclass(frozen=True)
class RunInfo:
    """`edgetl.json`, typed: the contract between `edgetl train` and every later stage.

    Stages read the fields they need from here, never from the JSON. `model`, `training` and
    `environment` are descriptive records (what was trained, how, where) that no stage acts on.
    """

    labels: list[str]
    size: int  # square input, pixels
    resize: str  # how frames become `size` × `size`: one of images.RESIZE_POLICIES
    preprocessing: dict[str, Any]  # what the model does to raw 0–255 pixels inside itself
    data: DataRecord
    metrics: RunMetrics | None  # None in edgetl.json files that lack them
    open_world: OpenWorldCard | None  # temperature, OOD threshold, per-class thresholds (None before they existed)
    model: ModelRecord
    training: TrainingRecord
    environment: dict[str, Any]  # versions and machine, for the record
    created: str
    model_file: str = MODEL_FILE
    labels_file: str = LABELS_FILE
    directory: Path | None = field(default=None, compare=False)  # where it was loaded from

    @property
    def model_path(self) -> Path:
        return self._in_run(self.model_file)

    def samples(self, split: str) -> list[Sample]:
        """One split's images and labels, exactly as training used them."""
        path = self._in_run(self.data.split_files[split])
        if not path.exists():
            raise EdgetlError(f"{self.directory} is missing its split file {path.name}.", "Re-run `edgetl train`.")
        return read_split_file(path, self.data.root, self.labels)

    def _in_run(self, relative: str) -> Path:
        if self.directory is None:
            raise ValueError("RunInfo was not loaded from a run directory")
        return self.directory / relative

    @classmethod
    def load(cls, run_dir: Path) -> RunInfo:
        """Read a complete run's metadata, with an error that says what is missing."""
        meta_path = run_dir / METADATA_FILE
        if not meta_path.exists():
            if partial_dir(run_dir).exists():  # only a finished run is renamed from NAME.partial to NAME
                hint = "Training may have been interrupted: `edgetl train --resume` continues it."
                raise EdgetlError(f"{run_dir} is not a finished edgetl run (it is {partial_dir(run_dir).name}).", hint)
            hint = "Pass the folder that `edgetl train --out` wrote."
            if not run_dir.is_dir():
                raise EdgetlError(f"{run_dir} is not a directory.", hint)
            raise EdgetlError(f"{run_dir} is not a finished edgetl run (no {METADATA_FILE}).", hint)
        meta = read_json(meta_path)
        _check_shape(meta, meta_path)
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise EdgetlError(
                f"{run_dir} was written by a newer edgetl (format {meta['format_version']}).", "Upgrade edgetl."
            )
        try:
            data = meta["data"]
            return cls(
                labels=list(meta["labels"]),
                size=int(meta["input"]["height"]),
                resize=meta["input"].get("resize", "stretch"),
                preprocessing=meta.get("preprocessing", {}),
                data=DataRecord(
                    Path(data["root"]),
                    data["presplit"],
                    data["split_files"],
                    data["counts"],
                    data.get("parent"),
                    data.get("version"),
                    Path(data["other_root"]) if data.get("other_root") else None,
                ),  # fmt: skip
                metrics=RunMetrics(**meta["metrics"]) if meta.get("metrics") else None,
                open_world=OpenWorldCard.from_json(meta["open_world"]) if meta.get("open_world") else None,
                model=ModelRecord.from_json(meta.get("model", {})),
                training=TrainingRecord.from_json(meta.get("training", {})),
                environment=meta.get("environment", {}),
                created=meta.get("created", ""),
                model_file=meta.get("model_file", MODEL_FILE),
                labels_file=meta.get("labels_file", LABELS_FILE),
                directory=run_dir,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise EdgetlError(
                f"{meta_path} lacks or garbles {error}.", "Restore it, or re-run `edgetl train`."
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "task": "image_classification",
            "labels": self.labels,
            "labels_file": self.labels_file,
            "model_file": self.model_file,
            "input": {
                "height": self.size,
                "width": self.size,
                "channels": "RGB",
                "range": [0, 255],
                "resize": self.resize,
                "interpolation": "area when shrinking, bilinear when enlarging",
            },
            "preprocessing": self.preprocessing,
            "model": asdict(self.model),
            "training": self.training.to_json(),
            "data": {
                "root": str(self.data.root),
                "presplit": self.data.presplit,
                "split_files": self.data.split_files,
                "counts": self.data.counts,
                **({"parent": self.data.parent} if self.data.parent else {}),
                **({"version": self.data.version} if self.data.version else {}),
                **({"other_root": str(self.data.other_root)} if self.data.other_root else {}),
            },
            "metrics": asdict(self.metrics) if self.metrics else {},
            "open_world": self.open_world.to_json() if self.open_world else None,
            "environment": self.environment,
        }

    def write(self, run_dir: Path) -> None:
        """Write `edgetl.json` into `run_dir`; its presence marks the run complete, so write it last."""
        write_json(run_dir / METADATA_FILE, self.to_json())
