"""The most accurate model within a latency budget, measured end to end on this machine.

    python benchmarks/latency_budget.py --data ../shared/datasets/flowers [--budget-fraction 0.333] [--train-top 2]

1. This machine's device profile (`edgetl profile` + `edgetl bench PROFILE`, made once and cached).
2. The budget: a fraction of MobileNetV2 1.0 @ 224's profiled int8 latency (the default model).
3. The search `edgetl train --max-latency` runs: every candidate within the budget estimated (frozen
   features + softmax classifier), offline only those whose ImageNet weights are cached.
4. Full default training of the `--train-top` best estimates and of the unconstrained default, so the
   estimate's ranking can be checked against what training really gives (test top-1).
5. The chosen model converted to int8 and timed by `edgetl bench` at the camera's thread count.
Prints one table and the three checks of issue 11 (ranking, accuracy within the budget, latency).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from shared_data import SHARED, use_shared_keras_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "flowers")
    parser.add_argument("--budget-fraction", type=float, default=1 / 3)
    parser.add_argument("--train-top", type=int, default=2, help="fully train this many of the best estimates")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = Path(tempfile.mkdtemp(prefix="edgetl-latency-budget-"))
    use_shared_keras_weights()

    from rich.console import Console
    from rich.table import Table

    from edgetl.bench_record import BenchRow
    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.edge.bench import BenchOptions, run_bench
    from edgetl.latency import Candidate, profiled_latencies
    from edgetl.profiling import local_profile
    from edgetl.rundir import RunInfo
    from edgetl.train.config import TrainConfig
    from edgetl.train.data import scan
    from edgetl.train.run import train
    from edgetl.train.search import search

    console, quiet = Console(), Console(quiet=True)
    started = time.perf_counter()
    profile = local_profile(console)
    profiled, environment = profiled_latencies(profile)
    console.print(f"profile: {profile} ({len(profiled)} candidates, {time.perf_counter() - started:.0f} s)")
    reference = next(p for p in profiled if p.candidate == Candidate("mobilenet_v2", 1.0, 224))
    budget = round(args.budget_fraction * reference.median_ms, 3)
    console.print(
        f"budget: {args.budget_fraction:.3f} × MobileNetV2 1.0 @ 224 ({reference.median_ms:.2f} ms at "
        f"{reference.threads} thread(s)) = {budget} ms"
    )

    config = TrainConfig(seed=args.seed, max_latency=budget, device_profile=str(profile))
    started = time.perf_counter()
    chosen, estimates, _ = search(scan(args.data, seed=args.seed), config)
    search_seconds = time.perf_counter() - started
    ranked = sorted((e for e in estimates if e.val_top1 is not None), key=lambda e: -e.val_top1)
    skipped = [e for e in estimates if e.status.startswith("skipped")]
    console.print(f"search: {len(ranked)} estimated, {len(skipped)} skipped, {search_seconds:.0f} s")

    trained = {}
    default = TrainConfig(seed=args.seed)
    winner = Candidate(chosen.backbone, chosen.alpha, chosen.size)
    others = [e.candidate for e in ranked if e.candidate not in (winner, reference.candidate)]
    plan = [winner, *others[: args.train_top - 1], reference.candidate]
    for candidate in plan:
        console.print(f"training {candidate.describe()}…")
        run_config = replace(default, backbone=candidate.backbone, alpha=candidate.alpha, size=candidate.size)
        run_started = time.perf_counter()
        run = train(args.data, work / candidate.name, run_config, console=quiet)
        info = RunInfo.load(run)
        trained[candidate] = (
            info.metrics.validation_top1,
            info.metrics.test_top1,
            time.perf_counter() - run_started,
            run,
        )

    convert(trained[winner][3], ConvertOptions(formats=("int8",)), console=quiet)
    bench = run_bench(
        [trained[winner][3] / "model_int8.tflite"], BenchOptions(threads=[reference.threads]), progress=lambda t: None
    )
    measured = BenchRow.from_json(bench["models"][0]).median_ms(reference.threads)

    latency = {p.candidate: p.median_ms for p in profiled}
    table = Table(
        title=f"{args.data.name}: budget {budget} ms ({environment.get('cpu')}, {reference.threads} thread(s))"
    )
    for column in (
        "candidate",
        "profiled ms",
        "estimated val top-1",
        "trained val top-1",
        "trained test top-1",
        "train s",
    ):
        table.add_column(column, justify="right")
    rows = ranked + [e for e in estimates if e.candidate == reference.candidate and e.val_top1 is None]
    for e in rows:
        full = trained.get(e.candidate)
        table.add_row(
            e.candidate.describe() + (" ★" if e.candidate == winner else ""),
            f"{latency[e.candidate]:.2f}",
            f"{100 * e.val_top1:.1f} %" if e.val_top1 is not None else "over budget",
            f"{100 * full[0]:.1f} %" if full else "",
            f"{100 * full[1]:.1f} %" if full else "",
            f"{full[2]:.0f}" if full else "",
        )
    console.print(table)
    for e in skipped:
        console.print(f"skipped {e.candidate.describe()}: {e.status.removeprefix('skipped: ')}")
    within = [c for c in trained if c != reference.candidate]
    best_trained = max(within, key=lambda c: trained[c][1])
    console.print(
        f"ranking: the estimate's choice {winner.describe()} "
        + (
            "is"
            if best_trained == winner
            else f"is not (trained best: {best_trained.describe()}, "
            f"{100 * (trained[best_trained][1] - trained[winner][1]):+.1f} pt)"
        )
        + f" the best of the {len(within)} trained within the budget"
    )
    chosen_top1, unconstrained_top1 = trained[winner][1], trained[reference.candidate][1]
    console.print(
        f"accuracy: chosen {100 * chosen_top1:.1f} % test top-1 vs unconstrained {100 * unconstrained_top1:.1f} % "
        f"({100 * (chosen_top1 - unconstrained_top1):+.1f} pt)"
    )
    console.print(
        f"latency: chosen model's int8 by edgetl bench {measured:.2f} ms at {reference.threads} thread(s), "
        f"budget {budget} ms (ratio {measured / budget:.2f}); search took {search_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
