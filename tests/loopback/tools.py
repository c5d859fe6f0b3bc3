"""The real agent CLIs, as .ci/agents installs them, run against a loopback server.

Each run gets a home of its own (``HOME``, ``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``,
``GEMINI_CLI_HOME`` in a temporary directory) so no real login, settings or
transcript folder is read or written, and the tools' network side traffic
(auto-update, telemetry) is off.

Gemini CLI (npm) and Aider (PyPI) are not installed by .ci/agents yet: they are
looked for in ``~/.cache/directorate-agents-extra/node_modules/.bin/gemini`` and
``~/.cache/aider-venv/bin/aider`` too (``python3 -m venv ~/.cache/aider-venv &&
~/.cache/aider-venv/bin/pip install aider-chat==0.86.2``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

# Keep in step with .ci/agents.
PINNED = {"claude": "2.1.332", "codex": "0.171.0", "gemini": "0.61.0", "aider": "0.86.2"}
# Read when this module is imported (at collection), before the tests' hermetic
# environment removes every DIRECTORATE_* variable.
AGENT_CACHE = Path(
    os.environ.get("DIRECTORATE_AGENT_CACHE") or Path.home() / ".cache" / "directorate-agents"
)
# Codex's model: one whose bundled metadata offers the freeform apply_patch tool and
# exec_command in the request's own ``tools`` (newer ones route every tool through a
# JavaScript ``exec`` tool instead).
CODEX_MODEL = "gpt-5.5"
OUTPUT_LIMIT = 4 * 1024 * 1024


_CACHE = Path.home() / ".cache"
# Where else each tool may be: Gemini CLI and Aider, installed by hand (see above).
ELSEWHERE = {
    "gemini": [_CACHE / "directorate-agents-extra" / "node_modules" / ".bin" / "gemini"],
    "aider": [
        AGENT_CACHE / "aider-venv" / "bin" / "aider",
        _CACHE / "aider-venv" / "bin" / "aider",
    ],
}


def binary(tool: str) -> Path | None:
    """The cached binary of ``claude``, ``codex``, ``gemini`` or ``aider``, or None
    when not installed."""
    for path in [AGENT_CACHE / "node_modules" / ".bin" / tool, *ELSEWHERE.get(tool, [])]:
        if path.exists() and os.access(path, os.X_OK):
            return path
    return None


def missing_reason(tool: str) -> str:
    if tool == "aider":
        return (
            "the real aider is not installed (python3 -m venv ~/.cache/aider-venv && "
            f"~/.cache/aider-venv/bin/pip install aider-chat=={PINNED['aider']})"
        )
    if tool == "gemini":
        return (
            f"the real gemini CLI is not installed in {AGENT_CACHE} or {ELSEWHERE['gemini'][0]} "
            f"(npm install @google/gemini-cli@{PINNED['gemini']})"
        )
    return (
        f"the real {tool} CLI is not installed in {AGENT_CACHE} "
        "(bash .ci/agents installs it; it needs npm)"
    )


def claude_env(home: Path, base_url: str, api_key: str = "test") -> dict[str, str]:
    """Claude Code's environment: its API at ``base_url``, everything else off."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # A refused key is not retried (the default retries for minutes).
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def codex_env(home: Path, api_key: str = "test") -> dict[str, str]:
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "OPENAI_API_KEY": api_key,
    }


def codex_provider_args(base_url: str) -> list[str]:
    """``-c`` overrides that send codex's model traffic to ``base_url`` (Responses
    API), without retries, and turn off its update check and analytics."""
    return [
        "-c", 'model_providers.loop.name="loopback"',
        "-c", f'model_providers.loop.base_url="{base_url}/v1"',
        "-c", 'model_providers.loop.wire_api="responses"',
        "-c", 'model_providers.loop.env_key="OPENAI_API_KEY"',
        "-c", "model_providers.loop.request_max_retries=0",
        "-c", "model_providers.loop.stream_max_retries=0",
        "-c", 'model_provider="loop"',
        "-c", f'model="{CODEX_MODEL}"',
        "-c", "check_for_update_on_startup=false",
        "-c", "analytics.enabled=false",
    ]  # fmt: skip


GEMINI_MODEL = "gemini-2.5-flash"


def gemini_env(home: Path, base_url: str, api_key: str | None = "test") -> dict[str, str]:
    """Gemini CLI's environment: the Gemini API at ``base_url`` with an API key. Its
    settings (``GEMINI_CLI_HOME/.gemini/settings.json``) select the API key auth
    (without it, exit 41 "Invalid auth method selected."), and turn off its update
    check and usage statistics."""
    write_gemini_settings(home)
    (home / "tmp").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GEMINI_CLI_HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": base_url,
        # Its error reports (gemini-client-error-*.json) go to the temporary folder.
        "TMPDIR": str(home / "tmp"),
    }
    if api_key is not None:
        env["GEMINI_API_KEY"] = api_key
    return env


def write_gemini_settings(home: Path, auth: str | None = "gemini-api-key") -> Path:
    settings: dict[str, object] = {
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
    }
    if auth is not None:
        settings["security"] = {"auth": {"selectedType": auth}}
    path = home / ".gemini" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


AIDER_MODEL = "gpt-4.1"


def aider_env(home: Path, api_key: str | None = "test") -> dict[str, str]:
    """Aider's environment (its API base is an argument, ``aider_provider_args``)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "COLUMNS": "100000",  # as the aider kind sets it: no line of its answer wrapped
    }
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    return env


def aider_provider_args(base_url: str) -> list[str]:
    """Aider's model traffic to ``base_url`` (OpenAI Chat Completions), its model."""
    return ["--openai-api-base", f"{base_url}/v1", "--model", AIDER_MODEL]


@attrs.frozen
class Run:
    argv: list[str]
    env: dict[str, str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdin: str | None = "",
    timeout: float = 120.0,
) -> Run:
    """Run a CLI in its own process group; on timeout every descendant is killed.
    ``stdin=None``: stdin is /dev/null (Aider, which takes its instructions from a file)."""
    start = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(
            f"{argv[0]} still running after {timeout:.0f} s: {err[-2000:]}"
        ) from None
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing the tool started outlives it
            os.killpg(process.pid, signal.SIGKILL)
    return Run(
        list(argv),
        dict(env),
        process.returncode,
        out[:OUTPUT_LIMIT],
        err[:OUTPUT_LIMIT],
        time.monotonic() - start,
    )
