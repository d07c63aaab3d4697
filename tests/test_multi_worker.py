"""Two real `edgetl train` workers on 127.0.0.1 (MultiWorkerMirroredStrategy), as the README's
multi-machine section tells a user to run them: same command, same --out, one TF_CONFIG each."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

from conftest import Process

TINY_ARGS = ["--alpha", "0.35", "--size", "64", "--batch-size", "16", "--head-epochs", "2"]


def _cluster(count: int = 2) -> list[dict]:
    """One TF_CONFIG per worker, on free local ports; worker 0 is the chief (no "chief" task named)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    hosts = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    for sock in sockets:
        sock.close()
    return [{"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}} for i in range(count)]


def _start(data: Path, out: Path, weights: str, *extra: str) -> list[Process]:
    """Both workers, from a pretrained (here: random) weights file: the default path, phase 2 on the boundary
    cache, as every user with ImageNet weights runs it (with --weights none it was never exercised)."""
    command = ["train", str(data), "--out", str(out), *TINY_ARGS, "--weights", weights, *extra]
    return [Process(*command, env={"TF_CONFIG": json.dumps(config)}) for config in _cluster()]


def test_two_workers_train_one_run_written_by_the_chief(beans_subset: Path, tiny_weights: str, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "beans"
    workers = _start(beans_subset, out, tiny_weights, "--finetune-epochs", "2")
    codes = [worker.finish() for worker in workers]
    assert codes == [0, 0], "\n---\n".join(worker.output[-2500:] for worker in workers)
    assert "2 replica(s)" in workers[0].output and "the chief writes" in workers[1].output
    shares = [re.search(r"Worker (\d) of 2 caches and trains on its share: (\d+) of (\d+)", w.output) for w in workers]
    assert [m.group(1) for m in shares] == ["1", "2"]  # each worker its own half of the photos, together all
    assert int(shares[0].group(2)) + int(shares[1].group(2)) == int(shares[0].group(3))
    assert sorted(p.name for p in out.parent.iterdir()) == ["beans"]  # no worker folder, no partial left
    meta = json.loads((out / "edgetl.json").read_text())
    assert meta["training"]["replicas"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["count"] == 36 and sum(map(sum, metrics["test"]["confusion_matrix"])) == 36
    # Both workers saw the same (all-reduced) metrics every epoch, so they stopped together.
    assert _epoch_lines(workers[0]) == _epoch_lines(workers[1])


def test_a_lost_worker_ends_the_chief_with_a_clear_error_and_its_checkpoint_intact(
    beans_subset: Path, tiny_weights: str, tmp_path: Path
) -> None:
    out = tmp_path / "runs" / "beans"
    chief, worker = _start(beans_subset, out, tiny_weights, "--finetune-epochs", "30", "--patience", "30")
    worker.wait_for("fine-tuning epoch 1:")
    worker.proc.kill()
    killed = time.monotonic()
    assert chief.finish(timeout=120) == 2, chief.output[-2500:]
    assert time.monotonic() - killed < 60
    assert "Another worker of the cluster stopped answering" in chief.output and "--resume" in chief.output
    partial = out.with_name("beans.partial")
    state = json.loads((partial / "state.json").read_text())
    assert state["phase"] == "finetune" and state["epoch"] >= 1 and (partial / "checkpoint.weights.h5").exists()
    assert not out.exists()
    # Both started again with --resume: each finds its own checkpoint and its share of the cache, and finishes.
    workers = _start(beans_subset, out, tiny_weights, "--resume")
    codes = [worker.finish(timeout=180) for worker in workers]
    assert codes == [0, 0], "\n---\n".join(worker.output[-2500:] for worker in workers)
    assert all("Resuming" in worker.output and "phase 'finetune'" in worker.output for worker in workers)
    assert sorted(p.name for p in out.parent.iterdir()) == ["beans"]


def test_sigterm_ends_every_worker(beans_subset: Path, tiny_weights: str, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "beans"
    workers = _start(beans_subset, out, tiny_weights, "--finetune-epochs", "30", "--patience", "30")
    for worker in workers:
        worker.wait_for("fine-tuning epoch 1:")
    sent = time.monotonic()
    for worker in workers:
        worker.proc.send_signal(signal.SIGTERM)
    codes = [worker.finish(timeout=60) for worker in workers]
    assert codes == [143, 143] and time.monotonic() - sent < 15, [w.output[-1500:] for w in workers]


def _epoch_lines(worker: Process) -> list[str]:
    return [line.strip() for line in worker.lines if " epoch " in line and "loss" in line]
