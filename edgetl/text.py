"""Text that came from data (labels, file names) made safe to show: in a terminal it cannot move the cursor,
recolour the screen or reorder what follows."""

from __future__ import annotations

import re

from rich.markup import escape

# C0 and C1 control characters (ESC starts every ANSI sequence; CR rewrites the line) and the Unicode
# bidirectional overrides and isolates, which make text display in an order other than its own.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each control character shown as its escape (\\x1b, \\u202e) instead of acting."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def for_console(text: str) -> str:
    """`text` for a Rich console: control characters shown, and brackets not read as Rich markup."""
    return escape(printable(text))


def is_text(name: str) -> bool:
    """Whether a name read from the file system is text: a name of other bytes holds lone surrogates, which no
    file, JSON page or report can carry back."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
