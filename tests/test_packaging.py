"""The wheel a Raspberry Pi installs holds the pages' files, and a copy installed from it serves them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from test_edge import BLOCK_TF

REPO = Path(__file__).resolve().parents[1]
PAGE_FILES = {"common.css", "common.js", "camera.html", "camera.js", "collect.html", "collect.js", "label.html",
              "label.js", "bench.html", "bench.css"}  # fmt: skip

SERVE_FROM_THE_WHEEL = """
import sys, urllib.request
sys.path.insert(0, sys.argv[1])
import edgetl
assert edgetl.__file__.startswith(sys.argv[1]), edgetl.__file__  # the installed copy, not the checkout
from pathlib import Path
from rich.console import Console
from edgetl.edge.label import Labeller
from edgetl.edge.label_page import serve_label
(Path(sys.argv[2]) / "kept").mkdir()
server = serve_label(Labeller(Path(sys.argv[2]) / "kept", Path(sys.argv[2]) / "data"), "127.0.0.1:0", Console(), None)
url = f"http://127.0.0.1:{server.server_address[1]}"
for path in ("/", "/common.css", "/common.js", "/label.js"):
    with urllib.request.urlopen(url + path, timeout=10) as response:
        assert response.status == 200 and len(response.read()) > 100, path
        print(path, response.headers["Content-Type"], response.headers["Content-Security-Policy"])
server.shutdown()
"""


def test_the_wheel_ships_the_pages_and_serves_them_when_installed(tmp_path: Path) -> None:
    offline = ["--no-deps", "--no-build-isolation"]  # setuptools from the dev extra: nothing is downloaded
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", *offline, str(REPO), "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("edgetl-*.whl")
    shipped = {Path(name).name for name in zipfile.ZipFile(wheel).namelist() if "/edge/static/" in name}
    assert shipped == PAGE_FILES

    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    code = BLOCK_TF + SERVE_FROM_THE_WHEEL
    served = subprocess.run(
        [sys.executable, "-c", code, str(target), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert "/common.css text/css" in served.stdout and "/ text/html" in served.stdout
    assert "'unsafe-inline'" not in served.stdout and "style-src 'self'" in served.stdout
