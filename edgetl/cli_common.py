"""What every `edgetl` command shares: the Typer app, the consoles, and options read from the options dataclasses."""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Annotated, Any

import typer
from rich.console import Console

import edgetl
from edgetl.images import max_pixels
from edgetl.options import help_of

LOG_WIDTH = 250  # columns when the output is not a terminal (a pipe, tee, the journal, CI) and $COLUMNS is unset


def _console(**kwargs: Any) -> Console:
    """A console as wide as the terminal; in a log, wide enough that tables keep their headers and names whole
    (Rich would take 80 columns and cut them to `medi…`). A table is only as wide as its content needs."""
    probe = Console(**kwargs)
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(width=LOG_WIDTH, **kwargs)


console = _console(soft_wrap=True)  # long lines stay whole in logs and pipes
err_console = _console(stderr=True)

app = typer.Typer(
    name="edgetl",
    help="From a folder of labelled photos to a fast image classifier on a Raspberry Pi camera.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def opt(options: type, name: str, *decls: str) -> Any:
    """A Typer option whose help is the one stated with the options dataclass field."""
    return typer.Option(*decls, help=help_of(options, name))


def pick(options: type, values: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments that are fields of `options`."""
    return {f.name: values[f.name] for f in fields(options) if f.name in values}


def _version(value: bool) -> None:
    if value:
        console.print(f"edgetl {edgetl.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """From a folder of labelled photos to a fast image classifier on a Raspberry Pi camera."""
    max_pixels()  # a bad EDGETL_MAX_MEGAPIXELS is one line now, not a reason given for every image later
