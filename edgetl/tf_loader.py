"""Load TensorFlow for the commands that need it: a clear error without it, and without its start-up chatter."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from types import ModuleType

from edgetl.errors import EdgetlError

_NOISE = re.compile(r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog)")


def load_tensorflow() -> ModuleType:
    """Import TensorFlow, or fail plainly when the [train] extra is missing (a Raspberry Pi has no TensorFlow).

    TensorFlow's absl preamble, oneDNN note and CUDA probing come from C++ at import, before
    TF_CPP_MIN_LOG_LEVEL applies, so file descriptor 2 is captured during the import and only the
    informational lines are dropped; warnings and errors are replayed.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise EdgetlError(
            "This command needs TensorFlow, which is not installed.", 'Install it: pip install "edgetl[train]"'
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not _NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    return tensorflow
