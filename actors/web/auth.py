"""Who may use the server: one bearer token, and a session cookie derived from it.

The token comes from ``DIRECTORATE_API_TOKEN``, else from ``$DIRECTORATE_HOME/api-token``,
generated once (mode 0600). API and metrics requests carry ``Authorization: Bearer
TOKEN``. A browser opens ``/?token=TOKEN`` once and gets an HttpOnly, SameSite=Strict
cookie holding an HMAC of the token (never the token itself). A state-changing request
authenticated by that cookie must also carry the page's CSRF value in a header: a
cross-site page can make the browser send the cookie, but it cannot read the value.
Every comparison is in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from directorate.persistence.embedded import directorate_home

TOKEN_ENV = "DIRECTORATE_API_TOKEN"
TOKEN_FILE = "api-token"
COOKIE = "directorate_session"
CSRF_HEADER = "x-directorate-csrf"


def token_file(home: Path | None = None) -> Path:
    return (home or directorate_home()) / TOKEN_FILE


def load_token(home: Path | None = None) -> tuple[str, Path | None]:
    """The token, and the file it was read from (None: it came from the environment).
    A missing file is created with a new random token, readable by its owner only."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given, None
    path = token_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: of two servers starting at once, one writes and both read it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise OSError(f"{path} is empty: delete it to have a new token made")
    return token, path


class Access(enum.Enum):
    GRANTED = "granted"
    MISSING = "missing"
    """No credentials: 401."""
    REFUSED = "refused"
    """Wrong credentials: 403."""


class Keys:
    """What the token grants, computed once per server."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self.session = self._derive(b"session")
        self.csrf = self._derive(b"csrf")

    def _derive(self, purpose: bytes) -> str:
        return hmac.new(self._token, b"directorate " + purpose, hashlib.sha256).hexdigest()

    def is_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def bearer(self, header: str | None) -> Access:
        if not header:
            return Access.MISSING
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Access.REFUSED
        return Access.GRANTED if self.is_token(value.strip()) else Access.REFUSED

    def cookie(self, value: str | None) -> Access:
        if not value:
            return Access.MISSING
        granted = hmac.compare_digest(value.encode(), self.session.encode())
        return Access.GRANTED if granted else Access.REFUSED

    def csrf_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())
