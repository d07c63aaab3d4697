"""Bench results as a terminal table, bench.json, bench.md, bench.html (self-contained) and PNG plots."""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import string
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgetl.bench_record import BenchRow
from edgetl.edge.pages import static_file
from edgetl.outputs import OutputSet
from edgetl.rundir import json_text, read_json, write_atomic

COLUMNS = (
    "model",
    "MB",
    "top-1",
    "top-5",
    "drop pt",
    "agree",
    "ECE",
    "OOD AUROC",
    "OOD rejected",
    "in rejected",
    "median ms",
    "p90 ms",
    "FPS",
    "threads",
)
OPTIONAL = ("top-5", "OOD AUROC", "OOD rejected", "in rejected")  # shown only when some model has them


def table_cells(report: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows, without optional columns no model fills (top-5: five classes or fewer; OOD: no --ood)."""
    rows = _rows(report)
    keep = [i for i, column in enumerate(COLUMNS) if column not in OPTIONAL or any(r[i] not in ("", "–") for r in rows)]
    return [COLUMNS[i] for i in keep], [[r[i] for i in keep] for r in rows]


def _rows(report: dict) -> list[list[str]]:
    rows = []
    for row in map(BenchRow.from_json, report["models"]):
        best = row.best_latency()
        if row.error or best is None:
            failed = f"FAILED: {(row.error or 'not timed')[:70]}"  # the whole message is in bench.json
            rows.append([row.name, "", failed, *[""] * (len(COLUMNS) - 3)])
            continue
        acc, ood, (threads, stats) = row.accuracy, row.ood or {}, best
        rows.append(
            [
                row.name,
                f"{(row.bytes or 0) / 1e6:.2f}",
                f"{100 * acc.top1:.1f}%" if acc and acc.top1 is not None else "–",
                f"{100 * acc.top5:.1f}%" if acc and acc.top5 is not None else "–",
                f"{acc.drop_pp:+.2f}" if acc and acc.drop_pp is not None else "–",
                f"{100 * acc.agreement:.1f}%" if acc and acc.agreement is not None else "–",
                f"{100 * row.ece:.1f}%" if row.ece is not None else "–",
                f"{ood['auroc']:.3f}" if "auroc" in ood else "–",
                f"{100 * ood['rejected_ood']:.1f}%" if "rejected_ood" in ood else "–",
                f"{100 * ood['rejected_in']:.1f}%" if "rejected_in" in ood else "–",
                f"{stats.median_ms:.2f}",
                f"{stats.p90_ms:.2f}",
                f"{stats.fps:.0f}",
                threads,
            ]
        )
    return rows


def environment_line(report: dict) -> str:
    env = report["environment"]
    return (
        f"{env['cpu']} ({env['cores']} cores, {env['machine']}), {env['os']}, Python {env['python']}, "
        f"{env['runtime']} {env['runtime_version']}; threads {','.join(map(str, env['threads']))}; "
        f"{report['options']['runs']} runs after {report['options']['warmup']} warm-up; data: {report['data']}"
    )


def print_table(report: dict, console: Console) -> None:
    columns, rows = table_cells(report)
    table = Table(title="edgetl bench", caption=environment_line(report), caption_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for cells in rows:
        table.add_row(*cells)
    console.print(table)
    floor = next((row.ece_floor for row in map(BenchRow.from_json, report["models"]) if row.ece_floor), None)
    if floor:
        console.print(
            f"ECE a perfectly calibrated model would measure on these images: {floor['median']:.1%} "
            f"(90th percentile {floor['p90']:.1%}); lower ECE is noise."
        )
    if budget_line(report):
        console.print(budget_line(report))
    console.print(f"[bold]{report['recommendation']}[/]")


def budget_line(report: dict) -> str | None:
    """A run trained with --max-latency: each .tflite's median against the budget, or None."""
    budget = report.get("latency_budget")
    if not budget:
        return None
    verdicts = ", ".join(
        f"{name} {ms:.2f} ms ({'within' if ms <= budget['max_ms'] else 'OVER'}, {ms / budget['max_ms']:.2f}×)"
        for name, ms in budget["median_ms"].items()
    )
    return f"Latency budget {budget['max_ms']} ms (train --max-latency) at {budget['threads']} thread(s): {verdicts}."


def markdown(report: dict) -> str:
    columns, rows = table_cells(report)
    lines = [
        "# edgetl bench",
        "",
        f"Reference for drop and agreement: {report['reference'] or 'none'}.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    lines += ["", f"**{report['recommendation']}**", "", f"Environment: {environment_line(report)}", ""]
    lines += [budget_line(report), ""] if budget_line(report) else []
    lines += ["Latency per thread count (median / p90 / p99 ms; load and first inference ms):", ""]
    for row in map(BenchRow.from_json, report["models"]):
        for threads, stats in row.latency.items():
            percentiles = f"{stats.median_ms:.2f} / {stats.p90_ms:.2f} / {stats.p99_ms:.2f}"
            lines.append(
                f"- {row.name} @ {threads}: {percentiles}; load {stats.load_ms:.0f}, first {stats.first_ms:.1f}"
            )
        if row.fallback_ops:
            lines.append(f"  - ops outside the accelerated delegate: {row.fallback_ops}")
        if row.peak_rss_mb:
            lines.append(f"  - peak RSS in a fresh process: {row.peak_rss_mb} MB")
    return "\n".join(lines) + "\n"


def plots(report: dict) -> dict[str, bytes]:
    """PNG plots by file name (needs matplotlib, which the [train] extra has; a bare Pi install skips them)."""
    if importlib.util.find_spec("matplotlib") is None:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in map(BenchRow.from_json, report["models"]) if not row.error and row.latency]
    if not ok:
        return {}
    pngs = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in ok:
        _, stats = row.best_latency()
        if row.accuracy and row.accuracy.top1 is not None:
            point = (stats.median_ms, 100 * row.accuracy.top1)
            ax.scatter(*point, s=60)
            ax.annotate(row.name, point, textcoords="offset points", xytext=(5, 5))
    ax.set_xscale("log")  # a Keras row can be 100× slower than int8
    ax.set_xlabel("median latency, ms (best thread count, log scale)")
    ax.set_ylabel("top-1 %")
    ax.set_title("Accuracy vs latency (up and left is better)")
    ax.grid(alpha=0.3)
    pngs["pareto.png"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    samples = [row.best_latency()[1].samples_ms for row in ok]
    ax.boxplot(samples, whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(ok) + 1), [f"{row.name}\n@{row.best_latency()[0]}" for row in ok])
    ax.set_yscale("log")
    ax.set_ylabel("single-inference latency, ms (log scale)")
    ax.set_title("Latency distribution (whiskers p1–p99)")
    ax.grid(alpha=0.3, axis="y")
    pngs["latency.png"] = _png(fig)

    calibrated = [row for row in ok if row.reliability]
    if calibrated:
        fig, ax = plt.subplots(figsize=(5, 4))
        for row in calibrated:
            bins = row.reliability
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                "o-",
                label=f"{row.name}: ECE {row.ece:.1%}",
            )
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle=":")
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_ylabel("accuracy")
        floor = calibrated[0].ece_floor  # same images for every row: the noise of ECE itself
        noise = f"; perfectly calibrated: ECE {floor['median']:.1%} (90 %: {floor['p90']:.1%})" if floor else ""
        ax.set_title(f"Reliability{noise}", fontsize=10)
        ax.legend()
        ax.grid(alpha=0.3)
        pngs["reliability.png"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh([row.name for row in ok], [(row.bytes or 0) / 1e6 for row in ok])
    ax.set_xlabel("file size, MB")
    ax.set_title("Model size")
    pngs["size.png"] = _png(fig)
    return pngs


def _png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def html_page(report: dict, images: dict[str, bytes]) -> str:
    columns, rows = table_cells(report)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>" for cells in rows)
    figures = (
        "".join(
            f'<figure><img alt="{Path(name).stem}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            "</figure>"
            for name, png in images.items()
        )
        or "<p>(plots need matplotlib: pip install matplotlib)</p>"
    )
    page = string.Template(static_file("bench.html").decode())  # every value below is escaped: data, not markup
    return page.substitute(
        style=static_file("bench.css").decode(),
        recommendation=html.escape(report["recommendation"]),
        head=head,
        body=body,
        environment=html.escape(environment_line(report)),
        reference=html.escape(str(report["reference"])),
        figures=figures,
        report=html.escape(json.dumps(report, indent=1)[:200000]),
    )


def write_reports(report: dict, outputs: OutputSet) -> Path:
    """Stage bench.json, bench.md, the plots and bench.html in `outputs` (the caller commits); returns the page."""
    images = plots(report)
    outputs.write("bench.json", json_text(report))
    outputs.write("bench.md", markdown(report))
    for name, png in images.items():
        outputs.write(name, png)
    return outputs.write("bench.html", html_page(report, images))


def compare(reports: list[dict], console: Console) -> str:
    """One table across machines: per model, each machine's best median latency and top-1."""
    machines = [f"{r['environment']['hostname']} ({r['environment']['cpu'][:30]})" for r in reports]
    models = sorted({row["name"] for r in reports for row in r["models"]})
    table = Table(title="edgetl bench --compare: median ms (best threads) / top-1")
    table.add_column("model")
    for machine in machines:
        table.add_column(machine, justify="right")
    lines = ["| model | " + " | ".join(machines) + " |", "|---|" + "---|" * len(machines)]
    for name in models:
        cells = []
        for report in reports:
            row = next((BenchRow.from_json(r) for r in report["models"] if r["name"] == name), None)
            if row is None or row.error or not row.latency:
                cells.append("–")
                continue
            threads, stats = row.best_latency()
            top1 = row.accuracy.top1 if row.accuracy else None
            cells.append(f"{stats.median_ms:.2f} ms @{threads}" + (f" / {100 * top1:.1f}%" if top1 is not None else ""))
        table.add_row(name, *cells)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    console.print(table)
    return "\n".join(lines) + "\n"


def compare_files(paths: list[Path], out: Path | None, console: Console) -> None:
    """`edgetl bench --compare`: the table on screen, and compare.md in `out` when given."""
    text = compare([read_json(path) for path in paths], console)
    if out is not None:
        write_atomic(out / "compare.md", text)
        console.print(f"Written: {out / 'compare.md'}")
