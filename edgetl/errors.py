"""One exception type for every mistake a user can make; the CLI prints it as one red line."""

from __future__ import annotations


class EdgetlError(Exception):
    """An error the user can fix: what is wrong, plus a hint on how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
