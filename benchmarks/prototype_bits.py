"""The OOD head's prototypes in 8 bits: the int8 file's size, its OOD score and its latency, in one run.

    python benchmarks/prototype_bits.py runs/beans --ood ../shared/datasets/flowers \\
        --ood ../shared/datasets/imagenet-samples/images

Converts RUN to int8 and float32 twice, into two copies of the run: with the prototype matrix in float32 (as
edgetl 0.2.0 wrote it) and in int8 (`convert.tflite.prototypes_in_8_bits`, what `edgetl convert` does now).
Then `edgetl bench` measures both int8 files on the run's test split against each OOD folder, at one thread,
the two copies alternating `--rounds` times (this machine is noisy). Prints one table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

VARIANTS = ("float32 prototypes (0.2.0)", "int8 prototypes (now)")


def convert_copy(run: Path, folder: Path, eight_bits: bool) -> Path:
    """A copy of `run` converted to int8 and float32, the prototypes stored as `eight_bits` says."""
    from edgetl.convert import run as conversion
    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.tflite import prototypes_in_8_bits

    copy = folder / ("int8_prototypes" if eight_bits else "float32_prototypes")
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("model_*.tflite", "conversion.json", "bench"))
    conversion.prototypes_in_8_bits = prototypes_in_8_bits if eight_bits else (lambda content: content)
    try:
        conversion.convert(copy, ConvertOptions(formats=("int8", "float32")), console=Console(quiet=True))
    finally:
        conversion.prototypes_in_8_bits = prototypes_in_8_bits
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--ood", type=Path, action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from edgetl.bench_record import BenchRow
    from edgetl.edge.bench import BenchOptions, run_bench
    from edgetl.rundir import read_json

    folder = Path(tempfile.mkdtemp(prefix="edgetl-prototype-bits-"))
    copies = [convert_copy(args.run, folder, eight_bits) for eight_bits in (False, True)]
    reports = {copy: read_json(copy / "conversion.json")["models"] for copy in copies}
    latency: dict[Path, list[float]] = {copy: [] for copy in copies}
    ood: dict[Path, list[str]] = {copy: [] for copy in copies}
    for round_index in range(args.rounds):
        for copy in copies:  # alternating: drifts in the machine's speed hit both alike
            oods = args.ood if round_index == 0 else [None]  # OOD sets are deterministic: measured once
            for ood_dir in oods or [None]:
                options = BenchOptions(threads=[1], ood=ood_dir)
                report = run_bench([copy / "model_int8.tflite"], options, progress=lambda text: None)
                row = BenchRow.from_json(report["models"][0])
                latency[copy].append(row.median_ms(1))
                if ood_dir is not None:
                    ood[copy].append(
                        f"{ood_dir.name}: AUROC {row.ood['auroc']:.4f}, rejected {row.ood['rejected_ood']:.1%}"
                    )
    table = Table(title=f"{args.run.name}: int8 file with the OOD prototypes in float32 and in int8 (1 thread)")
    for column in ("prototypes", "int8 bytes", "of float32", "top-1", "agreement", "in-class rejected", "OOD sets"):
        table.add_column(column)
    table.add_column("median ms (rounds)", justify="right")
    for name, copy in zip(VARIANTS, copies):
        int8 = reports[copy]["int8"]
        table.add_row(
            name,
            f"{int8['bytes']:,}",
            f"{int8['size_vs_float32']:.1%}",
            f"{int8['top1']:.1%}",
            f"{int8['agreement']:.1%}",
            f"{int8['ood']['rejected_in']:.1%}",
            "; ".join(ood[copy]) or "–",
            f"{statistics.median(latency[copy]):.2f} ({', '.join(f'{v:.2f}' for v in latency[copy])})",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
