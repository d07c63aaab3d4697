"""Option dataclasses state each default and its help once; the CLI reads both from them."""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any


def setting(default: Any, help: str) -> Any:  # noqa: A002 - "help" is what Typer calls it
    """A dataclass field with the help text `--help` shows for it."""
    return field(default=default, metadata={"help": help})


def help_of(options: type, name: str) -> str:
    """The help text stated with field `name` of an options dataclass."""
    return next(f.metadata["help"] for f in fields(options) if f.name == name)
