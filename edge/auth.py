"""Who may use an edgetl page (camera, collect, label): HTTP basic auth or a bearer token on every route.

Secrets never come from the command line, where `ps` shows them to every user of the machine: the password
from $EDGETL_AUTH_PASSWORD or a file, the token from a file. Comparisons take the same time whatever the
guess (hmac.compare_digest). Basic auth over plain HTTP crosses the network readable: on anything but
127.0.0.1, put a TLS proxy or an SSH tunnel in front, as the warning says.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.options import setting

PASSWORD_VARIABLE = "EDGETL_AUTH_PASSWORD"


@dataclass
class AuthOptions:
    """Who may use the page, each default stated once (the CLI shows them)."""

    auth: str | None = setting(None, f"Require this user name (HTTP basic auth; password in ${PASSWORD_VARIABLE}).")
    auth_password_file: Path | None = setting(None, "With --auth: read the password from this file instead.")
    auth_token_file: Path | None = setting(None, "Require 'Authorization: Bearer TOKEN', TOKEN read from this file.")


@dataclass(frozen=True)
class Credentials:
    basic: bytes | None  # the expected "user:password", as the browser sends it (before base64)
    token: bytes | None

    def allow(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() == "basic" and self.basic is not None:
            try:
                given = base64.b64decode(value.strip(), validate=True)
            except ValueError:
                return False
            return hmac.compare_digest(given, self.basic)
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(value.strip().encode(), self.token)
        return False


def credentials(options: AuthOptions) -> Credentials | None:
    """The page's credentials, or None when none were asked for; EdgetlError when a secret is missing."""
    if options.auth is None and options.auth_token_file is None:
        if options.auth_password_file is not None:
            raise EdgetlError("--auth-password-file needs --auth USER.", "Add --auth with the user name.")
        return None
    basic = None
    if options.auth is not None:
        if ":" in options.auth or not options.auth.strip():
            raise EdgetlError(f"--auth {options.auth!r} is not a user name.", "Use a name without ':'.")
        if options.auth_password_file is not None:
            password = read_secret(options.auth_password_file, "--auth-password-file")
        else:
            password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise EdgetlError(
                f"--auth {options.auth} needs a password.",
                f"Set ${PASSWORD_VARIABLE}, or pass --auth-password-file FILE (never the password itself).",
            )
        basic = f"{options.auth}:{password}".encode()
    token = read_secret(options.auth_token_file, "--auth-token-file").encode() if options.auth_token_file else None
    return Credentials(basic, token)


def read_secret(path: Path, option: str) -> str:
    """A secret from a file: its first line, without the line end and surrounding blanks (what every hint says),
    so a trailing comment or a second line never becomes part of it. A missing, unreadable or empty first line
    is one clear error. The one reader of secret files (pages and MQTT alike)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EdgetlError(f"{option} {path} cannot be read ({error}).", "Pass a readable text file.") from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise EdgetlError(f"{option} {path} has nothing on its first line.", "Put the secret on its first line.")
    return secret
