"""`edgetl bench`: latency, accuracy, size and memory of every model variant, measured where it will run.

In the spirit of LiteRT's `benchmark_model`: warm-up runs discarded, then percentiles of single
inferences, thread count stated. But on real preprocessed images (not random tensors), with
accuracy on labelled data next to the latency, so the table answers "which file do I deploy?".
TensorFlow is optional: with only the [edge] install the `.tflite` rows are measured, and the
Keras row is added when TensorFlow is importable.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgetl.bench_record import BenchRow, LatencyStats
from edgetl.edge.classifier import Classifier, ClassifierOptions
from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.edge.timing import time_single_inferences
from edgetl.errors import EdgetlError
from edgetl.images import labelled_samples, list_images, load_for_model
from edgetl.latency import Candidate as Configuration
from edgetl.latency import camera_threads, is_profile, read_manifest
from edgetl.metrics import (
    accuracy,
    auroc,
    drop_within_budget,
    ece,
    ece_floor,
    near_chance,
    near_chance_message,
    reliability,
)
from edgetl.options import setting
from edgetl.rundir import METADATA_FILE, RunInfo, refuse_existing
from edgetl.tf_loader import load_tensorflow

SCHEMA_VERSION = 1
RANDOM_IMAGES = 16  # a device profile is timed on random pixels: its models have random weights


@dataclass
class BenchOptions:
    """What `edgetl bench` measures, each default stated once (the CLI shows them)."""

    threads: list[int] = setting(
        None, "Interpreter thread counts to measure, e.g. 1,2,4 (default: 1 and all cores; a profile: the camera's)."
    )
    runs: int = setting(100, "Timed single inferences per model and thread count.")
    warmup: int = setting(10, "Untimed runs first.")
    backend: str = setting("auto", "auto, litert, tflite-runtime or tensorflow.")
    max_drop: float = setting(
        1.0, "Accuracy budget (top-1 points; a larger drop the test images can't tell from chance passes)."
    )
    batch_latency: bool = setting(False, "Also time batched inference (per image).")
    ood: Path | None = setting(None, "Photos of none of the classes: measure how many each model rejects as 'unknown'.")

    def __post_init__(self) -> None:
        if self.threads is not None and min(self.threads) < 1:
            raise EdgetlError(f"--threads {self.threads}: thread counts must be 1 or more.", "Example: --threads 1,2,4")
        if self.runs < 1 or self.warmup < 0:
            raise EdgetlError("--runs must be at least 1 and --warmup not negative.")


def parse_threads(text: str | None) -> list[int] | None:
    """ "1,2,4" → [1, 2, 4]; None stays None (the default)."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()] or [0]
    except ValueError:
        raise EdgetlError(f"--threads {text} is not a list of numbers.", "Example: --threads 1,2,4") from None


def report_folder(sources: list[Path], out: Path | None, force: bool) -> Path:
    """Where the report goes (RUN/bench, or ./bench for files), refusing to replace one unless forced."""
    folder = out or (sources[0] / "bench" if sources[0].is_dir() else Path("bench"))
    refuse_existing(folder / "bench.json", "--out another folder", force=force)
    return folder


@dataclass
class Candidate:
    name: str  # e.g. "int8", "keras"
    path: Path
    kind: str  # "tflite" or "keras"
    config: Configuration | None = None  # a device-profile model: the configuration it stands for


@dataclass
class Dataset:
    labels: list[str]
    files: list[Path]  # none: random pixels, for latency only (a device profile)
    targets: np.ndarray  # class index per file
    source: str
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file → why; left out for every model
    _cache: dict = field(default_factory=dict)

    def images(self, size: int, resize: str) -> np.ndarray:
        """Decoded and resized once per (size, policy): every model sees the same pixels."""
        key = (size, resize)
        if key not in self._cache:
            if self.files:
                self._cache[key] = self._decode(size, resize)
            else:
                self._cache[key] = np.random.default_rng(0).integers(0, 256, (RANDOM_IMAGES, size, size, 3), np.uint8)
        return self._cache[key]

    def _decode(self, size: int, resize: str) -> np.ndarray:
        """Every readable file. An unreadable one is named in `skipped` and dropped from `files` and `targets`
        before the first model is scored, so every model is judged on the same images (as convert does)."""
        decoded, readable = [], []
        for index, path in enumerate(self.files):
            try:
                decoded.append(load_for_model(path, size, resize))  # type: ignore[arg-type]
                readable.append(index)
            except Exception as error:  # Pillow raises many types for broken files
                self.skipped[str(path)] = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not decoded:
            raise EdgetlError(f"None of the {len(self.files)} images in {self.source} could be read.", "Check them.")
        self.files, self.targets = [self.files[i] for i in readable], self.targets[readable]
        return np.stack(decoded)


# --- what to benchmark, on what ------------------------------------------------------------------------------------


def find_models(sources: list[Path]) -> tuple[list[Candidate], RunInfo | None]:
    """Candidates from a run directory (Keras model + every .tflite), a profile folder, or .tflite files."""
    if len(sources) == 1 and is_profile(sources[0]):
        configs = read_manifest(sources[0])
        return [Candidate(c.name, sources[0] / name, "tflite", c) for name, c in configs.items()], None
    if len(sources) == 1 and sources[0].is_dir():
        run = sources[0]
        info = RunInfo.load(run)
        candidates = [Candidate(p.stem.removeprefix("model_"), p, "tflite") for p in sorted(run.glob("*.tflite"))]
        if info.model_path.exists() and importlib.util.find_spec("tensorflow") is not None:
            candidates.insert(0, Candidate("keras", info.model_path, "keras"))
        if not candidates:
            raise EdgetlError(f"{run} has no models to benchmark.", "Run `edgetl convert` on it first.")
        return candidates, info
    candidates = []
    folders = {path.parent for path in sources}
    run = next(iter(folders)) if len(folders) == 1 else None
    info = RunInfo.load(run) if run is not None and (run / METADATA_FILE).exists() else None
    for path in sources:
        if path.is_dir():
            raise EdgetlError(f"{path} is a folder: pass one run directory, or .tflite files.", "")
        if not path.is_file():
            raise EdgetlError(f"{path} does not exist.", "Pass a run directory or .tflite files.")
        if path.suffix != ".tflite":
            raise EdgetlError(f"{path} is not a .tflite file.", "Pass a run directory or .tflite files.")
        candidates.append(Candidate(path.stem, path, "tflite"))
    return candidates, info  # files inside a run: its test split by default


def load_dataset(data: Path | None, run: RunInfo | None, labels: list[str], limit: int | None) -> Dataset:
    """--data DIR (class folders), else the run's held-out test split."""
    if data is None:
        if run is None:
            raise EdgetlError("No data to measure accuracy on.", "Pass --data DIR (one sub-folder per class).")
        samples = run.samples("test")
        source = f"test split of {run.directory.name} ({len(samples)} images)"
    else:
        samples = labelled_samples(data, labels, "--data")
        source = f"{data} ({len(samples)} images)"
    missing = [str(sample.path) for sample in samples[:20] if not sample.path.exists()]
    if missing:
        raise EdgetlError(f"Images are missing, e.g. {missing[0]}.", "Pass --data DIR with the images.")
    samples = samples[:limit] if limit else samples
    return Dataset(labels, [s.path for s in samples], np.array([s.label for s in samples], dtype=int), source)


# --- measuring ---------------------------------------------------------------------------------------------------


def delegation(model: ImageClassifierModel) -> tuple[dict[str, int], bool, dict[str, int]]:
    """Ops in the model, and the ones that run outside the accelerated (XNNPACK) delegate."""
    ops = model.ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    plain = [op for op in ops if op["op_name"] != "DELEGATE"]
    counts = Counter(op["op_name"] for op in plain)
    if not delegates:
        return dict(counts), False, dict(counts)
    boundary_in = {int(t) for d in delegates for t in d["inputs"]}
    boundary_out = {int(t) for d in delegates for t in d["outputs"]}
    fallback = Counter(
        op["op_name"]
        for op in plain
        if {int(t) for t in op["outputs"]} & boundary_in or {int(t) for t in op["inputs"]} & boundary_out
    )
    return dict(counts), True, dict(fallback)


# The child's own peak: VmHWM belongs to the address space exec() created, whereas ru_maxrss keeps
# the peak of the (large) parent that forked it. Elsewhere ru_maxrss is the best there is.
_PEAK_RSS_KIB = """
def peak_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource, sys
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes
"""


def peak_rss_mb(path: Path, threads: int, backend: str) -> tuple[float | None, str | None]:
    """Peak RSS of loading the model and running 20 inferences in a fresh process (TensorFlow blocked).

    Returns (MB, None), or (None, why). The child runs from a neutral folder, so a source checkout
    in the working directory cannot shadow the installed package.
    """
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        f"{_PEAK_RSS_KIB}\n"
        "import numpy as np\nfrom edgetl.edge.interpreter import ImageClassifierModel\n"
        f"m = ImageClassifierModel({str(path.resolve())!r}, threads={threads}, backend={backend!r})\n"
        "x = np.zeros((m.height, m.width, 3), np.uint8)\n"
        "for _ in range(20): m.scores(x)\n"
        "print(peak_kib())\n"
    )
    with tempfile.TemporaryDirectory(prefix="edgetl-rss-") as neutral:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=neutral)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        return None, lines[-1][:200]
    return round(int(result.stdout.split()[-1]) / 1024, 1), None


@dataclass
class Outputs:
    """What a model said about the images (working state; bench.json keeps only the metrics made from it)."""

    scores: np.ndarray  # probabilities, one row per image
    ood_scores: np.ndarray | None = None  # None for models without an OOD score
    rejected: np.ndarray | None = None  # "unknown" by the rule classify and camera apply
    ood_threshold: float | None = None
    outside: Outputs | None = None  # the same for the --ood photos


def bench_tflite(
    candidate: Candidate, dataset: Dataset, options: BenchOptions, resize: str
) -> tuple[BenchRow, Outputs | None]:
    row = BenchRow(candidate.name, "tflite", str(candidate.path), candidate.path.stat().st_size)
    if candidate.config is not None:
        row.candidate = asdict(candidate.config)
    outputs = None
    for threads in options.threads:
        started = time.perf_counter()
        classifier = Classifier(
            candidate.path, ClassifierOptions(threads=threads, backend=options.backend, resize=resize)
        )
        load = time.perf_counter() - started
        images = dataset.images(classifier.size, classifier.resize)
        first, times = time_single_inferences(classifier.scores, images, options.runs, options.warmup)
        row.latency[str(threads)] = LatencyStats.of(times, load, first)
        if threads == options.threads[0]:
            outputs = _decisions(classifier, images)
            if options.ood is not None:
                outputs.outside = _decisions(
                    classifier, load_ood_images(options.ood, classifier.size, classifier.resize)
                )
            row.runtime = classifier.model.backend
            row.ops, row.delegated, row.fallback_ops = delegation(classifier.model)
            if options.batch_latency:
                row.batch_latency = _batch_latency(classifier, images)
    row.peak_rss_mb, row.peak_rss_error = peak_rss_mb(candidate.path, options.threads[0], options.backend)
    return row, outputs


def _decisions(classifier: Classifier, images: Iterable[np.ndarray]) -> Outputs:
    """Probabilities, OOD scores and "unknown" decisions per image, by the rule classify and camera use."""
    scores, ood, rejected = [], [], []
    for image in images:
        probs, score = classifier.scores(image)
        scores.append(probs)
        ood.append(score)
        rejected.append(classifier.decide(probs, score, 1).unknown)
    has_ood = bool(ood) and ood[0] is not None
    return Outputs(
        np.stack(scores),
        np.asarray(ood, np.float64) if has_ood else None,
        np.asarray(rejected, bool),
        classifier.ood_threshold,
    )


def load_ood_images(folder: Path, size: int, resize: str) -> Iterator[np.ndarray]:
    """Every image under `folder` (recursively), decoded and resized like the labelled data, one at a time
    (thousands of photos would not fit a Pi's memory at once)."""
    return (load_for_model(path, size, resize) for path in list_images(folder))  # type: ignore[arg-type]


def open_world(row: BenchRow, outputs: Outputs, targets: np.ndarray) -> None:
    """ECE on the labelled images; with --ood (.tflite rows: what the device decides), AUROC of the OOD score
    (max-softmax for models without one) and the shares of OOD and in-class images rejected by the shipped
    rule, and by the OOD threshold alone."""
    row.ece, row.ece_floor = ece(outputs.scores, targets), ece_floor(outputs.scores)
    row.reliability = reliability(outputs.scores, targets)
    out = outputs.outside
    if out is None:
        return
    inside = outputs.ood_scores if outputs.ood_scores is not None else 1 - outputs.scores.max(1)
    outside = out.ood_scores if out.ood_scores is not None else 1 - out.scores.max(1)
    row.ood = {
        "score": "model" if outputs.ood_scores is not None else "max-softmax",
        "images": int(len(outside)),
        "auroc": auroc(inside, outside),
        "rejected_ood": float(np.mean(out.rejected)),
        "rejected_in": float(np.mean(outputs.rejected)),
    }
    if outputs.ood_scores is not None and outputs.ood_threshold is not None:
        # the OOD score alone; the rule above adds the per-class probability thresholds (a precision target)
        row.ood["at_ood_threshold"] = {
            "rejected_ood": float(np.mean(outside > outputs.ood_threshold)),
            "rejected_in": float(np.mean(inside > outputs.ood_threshold)),
        }


def _batch_latency(classifier: Classifier, images: np.ndarray, batch: int = 8) -> dict | None:
    """Per-image time when the interpreter runs a batch (resized input); None if the model cannot."""
    interpreter, details = classifier.model.interpreter, classifier.model.interpreter.get_input_details()[0]
    try:
        interpreter.resize_tensor_input(details["index"], [batch, *details["shape"][1:]])
        interpreter.allocate_tensors()
        stack = np.stack([classifier.model.input_tensor(image)[0] for image in images[:batch]])
        times = []
        for _ in range(10):
            started = time.perf_counter()
            interpreter.set_tensor(details["index"], stack)
            interpreter.invoke()
            times.append((time.perf_counter() - started) / batch)
        return {"batch": batch, "per_image_ms": round(1000 * float(np.median(times)), 3)}
    except Exception:
        return None
    finally:
        interpreter.resize_tensor_input(details["index"], list(details["shape"]))
        interpreter.allocate_tensors()


def bench_keras(
    candidate: Candidate, dataset: Dataset, options: BenchOptions, size: int, resize: str
) -> tuple[BenchRow, Outputs]:
    tf = load_tensorflow()  # only here, for the Keras row: the .tflite rows need no TensorFlow
    import keras

    started = time.perf_counter()
    model = keras.models.load_model(candidate.path, compile=False)
    load = time.perf_counter() - started
    images = dataset.images(size, resize)
    call = tf.function(lambda x: model(x, training=False), autograph=False)  # graph mode, as deployed TF runs
    first, times = time_single_inferences(
        lambda image: call(image[None].astype(np.float32)), images, options.runs, options.warmup
    )
    outputs = model.predict(images.astype(np.float32), batch_size=32, verbose=0)
    scores = np.asarray(outputs[0] if isinstance(outputs, list | tuple) else outputs)  # [probabilities, OOD score]
    row = BenchRow(
        "keras", "keras", str(candidate.path), candidate.path.stat().st_size, runtime=f"tensorflow {tf.__version__}"
    )
    row.latency["tf"] = LatencyStats.of(times, load, first)
    return row, Outputs(scores)


def environment(options: BenchOptions) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        fields = dict(
            (key.strip().lower(), value.strip())
            for key, _, value in (line.partition(":") for line in Path("/proc/cpuinfo").read_text().splitlines())
        )
        cpu = fields.get("model name") or fields.get("model") or fields.get("hardware") or cpu  # x86, Pi, other ARM
    except OSError:
        pass
    runtime, version = "unknown", ""
    try:
        from edgetl.edge.interpreter import interpreter_class

        runtime = interpreter_class(options.backend)[0]
        from importlib.metadata import version as package_version

        version = package_version(
            {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}.get(runtime, "tensorflow")
        )
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "runtime": runtime,
        "runtime_version": version,
        "threads": options.threads,
        "hostname": platform.node(),
    }


def run_bench(
    sources: list[Path],
    options: BenchOptions,
    data: Path | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Measure every candidate; a model that fails is reported in its row and the others still run."""
    candidates, run = find_models(sources)
    profile = any(candidate.config is not None for candidate in candidates)
    cores, budget = os.cpu_count() or 1, (run.training.max_latency if run else None)
    camera = camera_threads(cores)  # what a latency budget and a profile are measured at
    default_threads = [camera] if profile else sorted({1, cores, *([camera] if budget else [])})
    options = replace(options, threads=options.threads or default_threads)
    labels, size, resize = _labels_and_input(candidates, run)
    if profile:  # random weights: latency only, on random pixels
        dataset = Dataset(labels, [], np.zeros(0, int), f"random pixels ({RANDOM_IMAGES} images): a device profile")
    else:
        dataset = load_dataset(data, run, labels, limit)
    if options.ood is not None and not (options.ood.is_dir() and list_images(options.ood)):
        raise EdgetlError(
            f"--ood {options.ood} holds no images.", "Pass a folder of photos that show none of the classes."
        )
    rows = [_measure(candidate, dataset, options, size, resize, progress) for candidate in candidates]
    reference = _reference(rows)
    if not profile:
        for row, outputs in rows:
            _judge(row, outputs, dataset, labels, reference[1].scores if reference else None)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": [str(s) for s in sources],
        "data": dataset.source,
        "ood_data": str(options.ood) if options.ood else None,
        "labels": labels,
        "reference": reference[0].name if reference is not None else None,
        "options": {
            "threads": options.threads,
            "runs": options.runs,
            "warmup": options.warmup,
            "max_drop_pp": options.max_drop,
        },
        "environment": environment(options),
        "models": [row.to_json() for row, _ in rows],
    }
    report["recommendation"] = profile_summary(report) if profile else recommend(report)
    if budget:
        report["latency_budget"] = latency_budget([row for row, _ in rows], budget, camera)
    report["skipped_images"] = dataset.skipped
    report["warnings"] = _skipped_warnings(dataset.skipped) + _ood_warnings([row for row, _ in rows])
    return report


def _measure(
    candidate: Candidate, dataset: Dataset, options: BenchOptions, size: int, resize: str, progress: Callable
) -> tuple[BenchRow, Outputs | None]:
    """One candidate's row; a model that fails gets a row with its error, and the others still run."""
    progress(f"{candidate.name}: {candidate.path.name}")
    try:
        if candidate.kind == "keras":
            return bench_keras(candidate, dataset, options, size, resize)
        return bench_tflite(candidate, dataset, options, resize)
    except (EdgetlError, Exception) as error:  # one broken model must not hide the others
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return BenchRow(candidate.name, candidate.kind, str(candidate.path), error=text), None


def _judge(
    row: BenchRow, outputs: Outputs | None, dataset: Dataset, labels: list[str], reference: np.ndarray | None
) -> None:
    """Accuracy against the labels (and the reference model's answers), calibration and rejection."""
    if outputs is None:
        return
    if len(outputs.scores) and outputs.scores.shape[1] != len(labels):
        row.error = f"scores {outputs.scores.shape[1]} classes, the data has labels for {len(labels)}"
        return
    row.accuracy = accuracy(outputs.scores, dataset.targets, labels, reference)
    open_world(row, outputs, dataset.targets)


def _skipped_warnings(skipped: dict[str, str]) -> list[str]:
    if not skipped:
        return []
    shown = "; ".join(f"{Path(path).name}: {reason}" for path, reason in list(skipped.items())[:3])
    more = f" and {len(skipped) - 3} more (bench.json: skipped_images)" if len(skipped) > 3 else ""
    return [f"{len(skipped)} image(s) could not be read and were left out for every model: {shown}{more}."]


def _ood_warnings(rows: list[BenchRow]) -> list[str]:
    """--ood photos most of which a model confidently accepts probably show its classes."""
    warnings = []
    for row in rows:
        if row.ood and row.ood["score"] == "model" and row.ood["rejected_ood"] < 0.5:
            warnings.append(
                f"{row.name} accepts {1 - row.ood['rejected_ood']:.0%} of the --ood images as one of its classes: "
                "do they show the trained classes? Out-of-class photos should be mostly rejected."
            )
    return warnings


def _labels_and_input(candidates: list[Candidate], run: RunInfo | None) -> tuple[list[str], int, str]:
    if run is not None:
        return run.labels, run.size, run.resize
    errors = []
    for candidate in (c for c in candidates if c.kind == "tflite"):  # the first that loads: a broken one gets its row
        try:
            classifier = Classifier(candidate.path)
            return classifier.labels, classifier.size, classifier.resize
        except (EdgetlError, Exception) as error:
            errors.append(
                f"{candidate.path.name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
            )
    raise EdgetlError(f"None of the models could be loaded ({'; '.join(errors)}).", "Pass .tflite files from convert.")


def _reference(rows: list[tuple[BenchRow, Outputs | None]]) -> tuple[BenchRow, Outputs] | None:
    """The float model accuracy is compared against: Keras if measured, else float32 TFLite."""
    for name in ("keras", "float32"):
        for row, outputs in rows:
            if row.name == name and outputs is not None:
                return row, outputs
    return None


def latency_budget(rows: list[BenchRow], budget_ms: float, threads: int) -> dict:
    """The run's `--max-latency` against each .tflite's median at the camera's thread count."""
    medians = {row.name: row.median_ms(threads) for row in rows if row.median_ms(threads) is not None}
    return {"max_ms": budget_ms, "threads": threads, "median_ms": medians}


def profile_summary(report: dict) -> str:
    timed = [row for row in map(BenchRow.from_json, report["models"]) if row.latency]
    return (
        f"Device profile: {len(timed)} of {len(report['models'])} candidates timed at "
        f"{report['options']['threads'][0]} thread(s). Give this bench.json to "
        "`edgetl train DATA --max-latency MS --device-profile bench.json`."
    )


def recommend(report: dict) -> str:
    """The fastest model whose top-1 is within the budget of the reference."""
    budget = report["options"]["max_drop_pp"]
    rows = [BenchRow.from_json(row) for row in report["models"]]
    eligible = [
        row
        for row in rows
        if row.kind == "tflite"
        and not row.error
        and row.accuracy
        and row.latency
        and drop_within_budget(row.accuracy, budget)
    ]
    if not eligible:
        return f"No .tflite model is within {budget} points of the reference; see the table."
    best = min(eligible, key=lambda row: row.best_latency()[1].median_ms)
    record, classes = best.accuracy, len(report["labels"])
    if near_chance(record.top1, classes):
        return f"Not usable: {Path(best.file).name} {near_chance_message(record.top1, classes)}."
    threads, stats = best.best_latency()
    drop_text = f", {record.drop_pp:+.2f} pt vs {report['reference']}" if record.drop_pp is not None else ""
    return (
        f"Deploy {Path(best.file).name}: fastest within {budget} pt of top-1 — median {stats.median_ms:.2f} ms "
        f"at {threads} thread(s), top-1 {100 * record.top1:.1f}%{drop_text}."
    )
