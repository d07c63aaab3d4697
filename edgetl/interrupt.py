"""Ctrl-C and SIGTERM that always end a long command, within seconds, with the right hint.

The first signal raises `Interrupted` in the main thread, so `finally` blocks run and the last
checkpoint stays whole. TensorFlow can block that thread in native code (tearing down a tf.data
pipeline, waiting in a collective for a lost worker), where a Python handler never runs; so a
watcher thread also sees every signal (through `signal.set_wakeup_fd`) and ends the process
itself after `GRACE_SECONDS`, or at once on a second signal. Checkpoints are written by
rename, so even that hard exit leaves the previous one intact.

`Interrupted` derives from BaseException, not KeyboardInterrupt: Typer turns KeyboardInterrupt
into a bare exit 130 inside its own main, before `edgetl.cli.run` could print the hint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

from rich.markup import escape

GRACE_SECONDS = 5.0
_state: dict = {"hint": "", "installed": False}


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum)


def message() -> str:
    """What to print when interrupted: the command's own hint, if it set one."""
    return f"Interrupted. {_state['hint']}".strip()


def received() -> int | None:
    """The first signal this process received, even while the main thread was stuck in native code."""
    return _state.get("signum")


def check() -> None:
    """Raise `Interrupted` now if a signal came whose exception never reached the command.

    The handler runs at whatever Python code the main thread runs next: inside a finalizer (`__del__`,
    which TensorFlow's iterators and functions have), Python prints its exception and drops it. Long
    loops call this at each step (`edgetl.progress` does), so that signal still ends them at once.
    """
    if received() is not None and threading.current_thread() is threading.main_thread():
        raise Interrupted(received())


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal during the block takes effect when it ends (e.g. moving a set of files into place)."""
    _state["deferred"] = True
    try:
        yield
    finally:
        _state["deferred"] = False
    check()


def set_hint(hint: str) -> None:
    """What the interrupt message says from now on: the state the command's outputs are in."""
    _state["hint"] = hint


def install(hint: str = "") -> None:
    """Make SIGINT/SIGTERM end this command within GRACE_SECONDS; `hint` says what to do next."""
    set_hint(hint)
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    _state["installed"] = True
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    raised = threading.Event()

    def on_signal(signum: int, frame) -> None:
        if _state.get("deferred"):  # `deferred` raises it when its block ends
            _state.setdefault("signum", signum)
        elif not raised.is_set():
            raised.set()
            raise Interrupted(signum)

    _state["handler"] = on_signal
    reclaim()
    threading.Thread(target=_watch, args=(reader, writer), name="edgetl-interrupt", daemon=True).start()


def reclaim() -> None:
    """Take SIGINT/SIGTERM back after native code replaced the handlers (a no-op if never installed).

    MultiWorkerMirroredStrategy's coordination service installs a C-level SIGTERM handler of its own
    (a preemption notifier) that swallows the signal: a worker would never stop.
    """
    if _state.get("handler") and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _state["handler"])


def _watch(reader: socket.socket, writer: socket.socket) -> None:
    first = reader.recv(1)  # the C-level handler writes here even while the main thread is stuck
    _state["signum"] = first[0] if first else signal.SIGINT
    reader.settimeout(GRACE_SECONDS)
    with contextlib.suppress(TimeoutError):
        reader.recv(1)  # a second signal: the user does not want to wait
    _hard_exit(_state["signum"])


def _hard_exit(signum: int) -> None:
    sys.stderr.flush()
    os.write(2, f"\n{message()}\n".encode())
    os._exit(signal_exit_code(signum))


def exit_with_hint(signum: int, console) -> NoReturn:
    """End the command for a signal: the command's hint, and exit 128 + the signal number (shells' convention)."""
    console.print(f"[yellow]{escape(message())}[/]", highlight=False, soft_wrap=True)
    exit_now(signal_exit_code(signum))


def exit_now(code: int) -> NoReturn:
    """Exit without TensorFlow's teardown once it is loaded: after a failed collective or an interrupt its
    threads can hang the exit or abort it ("terminate called without an active exception")."""
    if "tensorflow" not in sys.modules:
        raise SystemExit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def signal_exit_code(signum: int) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, as shells report them."""
    return 128 + signum


class StopFlag:
    """For the device's commands (camera, collect, label), which stop themselves: SIGINT/SIGTERM set `event`,
    so the loop ends cleanly (camera released, stats printed, JSON complete) and the command exits with
    `exit_code` (the training commands raise `Interrupted` instead)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame) -> None:
        self.signum = signum
        self.event.set()

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number when one stopped the command, else None."""
        return signal_exit_code(self.signum) if self.signum is not None else None

    @property
    def signal(self) -> str | None:
        """The stopping signal's name (SIGINT, SIGTERM), for the summary."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
