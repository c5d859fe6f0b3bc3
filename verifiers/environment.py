"""The environment agents and verifier commands run in: a clean one, not the engine's.

The engine's own environment holds what no agent should see: ``DIRECTORATE_DSN``
(with its password), ``PG*``, cloud and API credentials. A child process gets only

1. the :data:`BASE_NAMES` (and ``LC_*``) the engine has: what programs need to run
   at all (``PATH``, ``HOME``, locale, terminal, temporary folder, time zone);
2. the engine variables a directive names in ``pass_env`` (``[agent] pass_env``,
   ``[verifiers] pass_env``), for example ``ANTHROPIC_API_KEY``;
3. the values a directive sets in ``env``;
4. for agents, the ``DIRECTORATE_*`` task variables the runner adds.

Values of variables whose names look secret (:func:`looks_secret`: ``KEY``,
``TOKEN``, ``SECRET``, ``PASSWORD`` or ``PASSWD`` in the name, any case) are
replaced by :data:`MASK` in the output the engine stores (:meth:`CleanEnvironment.mask`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

BASE_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "COLORTERM",
        "TMPDIR",
        "TMP",
        "TEMP",
        "TZ",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
    }
)
"""Engine variables every agent and verifier command gets (when the engine has them)."""
BASE_PREFIXES = ("LC_",)
"""... and those whose names start so (locale)."""
ENGINE_PREFIX = "DIRECTORATE_"
"""The engine's own variables (``DIRECTORATE_DSN``, ``DIRECTORATE_HOME``): never passed."""
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD")
MASK = "***"
MIN_MASKED_CHARS = 4
"""Shorter values are not masked: replacing every "1" would garble the output."""
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 1 << 20


def valid_name(name: object) -> bool:
    """Whether ``name`` can be an environment variable's name (``A-Z a-z 0-9 _``)."""
    return isinstance(name, str) and ENV_NAME.match(name) is not None


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`BASE_NAMES` and ``LC_*`` variables of ``source`` (the engine's)."""
    source = os.environ if source is None else source
    return {
        name: value
        for name, value in source.items()
        if name in BASE_NAMES or name.startswith(BASE_PREFIXES)
    }


class CleanEnvironment:
    """A child's environment: the base, the ``pass_env`` names the engine has, ``env``.

    Built again (from the engine's environment at that moment) by :meth:`build`, so
    a ``PATH`` the command line set up after start-up counts.
    """

    def __init__(
        self, *, pass_env: Iterable[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.pass_env = list(pass_env)
        self.env = dict(env or {})
        for name in [*self.pass_env, *self.env]:
            if not valid_name(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith(ENGINE_PREFIX):
                raise ValueError(f"{name}: DIRECTORATE_* variables are the engine's own")
        for name, value in self.env.items():
            if not isinstance(value, str) or "\x00" in value:
                raise ValueError(f"{name}: the value must be a string without NUL")

    def __repr__(self) -> str:
        return f"CleanEnvironment(pass_env={self.pass_env!r}, env={sorted(self.env)!r})"

    def build(
        self, extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment: base, passed, ``env``, then ``extra`` (the task variables)."""
        source = os.environ if source is None else source
        environment = base_environment(source)
        environment.update({name: source[name] for name in self.pass_env if name in source})
        environment.update(self.env)
        environment.update(extra or {})
        return environment

    def secrets(self, environment: Mapping[str, str]) -> list[str]:
        """The values of ``environment`` to mask, longest first."""
        values = {
            value
            for name, value in environment.items()
            if looks_secret(name) and len(value) >= MIN_MASKED_CHARS
        }
        return sorted(values, key=len, reverse=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by :data:`MASK`."""
    pattern = _pattern([s for s in secrets if s])
    return text if pattern is None or not text else pattern.sub(MASK, text)


def mask_optional(text: str | None, secrets: Iterable[str]) -> str | None:
    return None if text is None else mask(text, secrets)


def _pattern(secrets: list[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))


def mask_file(path: Path, secrets: Iterable[str]) -> None:
    """Rewrite the file at ``path`` with ``secrets`` masked (streamed: any size); a file
    that cannot be read or written is left as it is."""
    encoded = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
    if not encoded:
        return
    pattern = re.compile(b"|".join(re.escape(s) for s in encoded))
    temporary = path.with_name(path.name + ".masking")
    try:
        with path.open("rb") as src, temporary.open("wb") as dst:
            _mask_stream(src, dst, pattern, len(encoded[0]))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


def _mask_stream(src: BinaryIO, dst: BinaryIO, pattern: re.Pattern[bytes], longest: int) -> None:
    """Copy ``src`` to ``dst`` masking ``pattern``; the last ``longest - 1`` bytes of each
    read wait for the next one, so a secret across two reads is found too."""
    mask_bytes = MASK.encode()
    carry = b""
    while True:
        chunk = src.read(_CHUNK)
        buffer = carry + chunk
        if not chunk:
            dst.write(pattern.sub(mask_bytes, buffer))
            return
        # A match starting before ``cut`` ends within the buffer (it is at most ``longest``).
        cut = max(0, len(buffer) - (longest - 1))
        position = 0
        for match in pattern.finditer(buffer):
            if match.start() >= cut:
                break
            dst.write(buffer[position : match.start()])
            dst.write(mask_bytes)
            position = match.end()
        keep = max(position, cut)
        dst.write(buffer[position:keep])
        carry = buffer[keep:]
