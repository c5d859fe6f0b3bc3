"""The real agent CLIs, as .ci/agents installs them, run against a loopback server.

Each run gets a home of its own (``HOME``, ``CLAUDE_CONFIG_DIR``, ``CODEX_HOME`` in a
temporary directory) so no real login, settings or transcript folder is read or
written, and the tools' network side traffic (auto-update, telemetry) is off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

# Keep in step with .ci/agents.
PINNED = {"claude": "2.1.332", "codex": "0.171.0"}
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


def binary(tool: str) -> Path | None:
    """The cached binary of ``claude`` or ``codex``, or None when not installed."""
    path = AGENT_CACHE / "node_modules" / ".bin" / tool
    return path if path.exists() and os.access(path, os.X_OK) else None


def missing_reason(tool: str) -> str:
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
    stdin: str = "",
    timeout: float = 120.0,
) -> Run:
    """Run a CLI in its own process group; on timeout every descendant is killed."""
    start = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
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
