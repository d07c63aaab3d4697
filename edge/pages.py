"""The pages' files (edge/static/: HTML, CSS, JavaScript), shipped as package data and read from there.

Pages are files so that they can be read, linted and highlighted as what they are, and so that the
Content-Security-Policy allows no inline script or style at all.
"""

from __future__ import annotations

import functools
import importlib.resources

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@functools.cache
def static_file(name: str) -> bytes:
    """A page file shipped in the package (edge/static/), read once."""
    return importlib.resources.files("edgetl.edge").joinpath("static", name).read_bytes()
