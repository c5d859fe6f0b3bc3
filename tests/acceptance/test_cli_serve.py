"""``directorate serve`` and ``directorate daemon --http`` as a user runs them."""

from __future__ import annotations

import re
import stat
import time
import tomllib
from pathlib import Path

import httpx2 as httpx
from clihelp import Cli, scripted_directive

URL = re.compile(r"on (http://127\.0\.0\.1:\d+)")


def token_of(cli: Cli) -> str:
    path = Path(cli.env["DIRECTORATE_HOME"]) / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().strip()


def test_serve_beside_a_daemon_runs_a_directive_submitted_over_http(
    cli: Cli, tmp_path: Path
) -> None:
    path = scripted_directive(
        tmp_path, steps=[{"name": "only"}], script={"steps": {"*": {"sleep": 0.1}}}
    )
    daemon = cli.daemon()
    serve = cli.spawn("serve", "--port", "0")
    line = serve.wait_for_line("dashboard and API on")
    token = token_of(cli)
    assert token not in serve.text() and str(Path(cli.env["DIRECTORATE_HOME"])) in line
    base = URL.search(line).group(1)  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/api/directives").status_code == 401
    spec = tomllib.loads(path.read_text())
    created = httpx.post(f"{base}/api/directives", json=spec, headers=auth, timeout=60)
    assert created.status_code == 201 and created.json()["status"] == "applied", created.text
    directive_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while cli.directive(directive_id)["status"] != "completed":
        assert time.monotonic() < deadline, cli("show", directive_id).stdout
        time.sleep(0.2)
    shown = httpx.get(f"{base}/api/directives/{directive_id}", headers=auth).json()
    assert shown["directive"]["status"] == "completed"
    assert [s["status"] for s in shown["steps"]] == ["passed"]
    assert serve.stop() == 0 and "directorate serve: stopped" in serve.text()
    assert daemon.stop() == 0


def test_a_daemon_serves_http_beside_its_engine_and_a_taken_port_is_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    cli.env["DIRECTORATE_API_TOKEN"] = "given-token"
    daemon = cli.daemon("--http", "0")
    base = URL.search(daemon.wait_for_line("dashboard and API on")).group(1)  # type: ignore[union-attr]
    assert "given-token" not in daemon.text() and "DIRECTORATE_API_TOKEN" in daemon.text()
    assert httpx.get(f"{base}/healthz").json() == {"ok": True}
    metrics = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer given-token"})
    assert metrics.status_code == 200 and "directorate_writer_flush_seconds_bucket" in metrics.text
    port = base.rsplit(":", 1)[1]
    taken = cli("serve", "--port", port)
    assert taken.returncode == 1
    assert taken.stderr.strip().startswith(f"directorate: cannot listen on 127.0.0.1:{port}")
    assert len(taken.stderr.strip().splitlines()) == 1
    assert daemon.stop() == 0 and "directorate daemon stopped" in daemon.text()
