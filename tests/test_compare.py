"""`edgetl compare A B`: the same images for both models, a paired test, one verdict and an exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_edge import edge_cli

from edgetl.edge.compare import verdict


def test_the_verdict_follows_mcnemars_exact_test() -> None:
    line, p_value, better = verdict(gained=12, lost=1, images=128)
    assert better and p_value < 0.01 and line.startswith("B is better by 8.6 pt") and "deploy B" in line
    line, p_value, better = verdict(gained=1, lost=12, images=128)
    assert not better and line.startswith("B is worse by 8.6 pt")
    line, p_value, better = verdict(gained=3, lost=1, images=128)  # +1.6 pt: two images could be chance
    assert not better and p_value > 0.5 and line.startswith("No significant difference: B +1.6 pt")
    assert verdict(0, 0, 36) == ("No significant difference: B +0.0 pt (p = 1; 0 images gained, 0 lost).", 1.0, False)


def test_a_model_against_itself_is_no_better_and_exits_1(beans_int8: Path, tmp_path: Path) -> None:
    copy = tmp_path / "candidate.tflite"
    shutil.copy(beans_int8 / "model_int8.tflite", copy)
    done = edge_cli("compare", str(beans_int8), str(copy), "--json", "-", "--data", str(beans_int8 / "unused"))
    assert done.returncode == 2 and "does not exist" in done.stderr  # --data is checked: one line
    done = edge_cli("compare", str(beans_int8), str(beans_int8), "--json", "-")
    assert done.returncode == 1, done.stderr  # exit 1: nothing to deploy
    record = json.loads(done.stdout)
    assert record["images"] == 36 and record["agreement"] == 1.0 and record["gained"] == record["lost"] == 0
    assert record["a"]["top1"] == record["b"]["top1"] and record["a"]["median_ms"] > 0
    assert set(record["a"]["per_class"]) == {"angular_leaf_spot", "bean_rust", "healthy"}
    table = edge_cli("compare", str(beans_int8), str(copy), "--data", str(_beans_test(tmp_path)), "--no-timing")
    assert table.returncode == 1 and "No significant difference" in table.stdout, table.stderr
    assert "6 images of the classes both know" in table.stdout


def test_models_that_share_no_class_are_one_clear_line(beans_int8: Path, converted: tuple[Path, dict]) -> None:
    done = edge_cli("compare", str(converted[0]), str(beans_int8))
    assert done.returncode == 2 and "share no class" in done.stderr and "Traceback" not in done.stderr


def _beans_test(tmp_path: Path) -> Path:
    from conftest import shared_path

    folder = tmp_path / "data"
    for source in sorted(shared_path("datasets", "beans", "test").iterdir()):
        (folder / source.name).mkdir(parents=True)
        for image in sorted(source.glob("*.jpg"))[:2]:
            (folder / source.name / image.name).symlink_to(image)
    return folder
