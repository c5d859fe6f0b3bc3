"""``directorate db status`` and ``db stop`` on a real embedded server of their own."""

from __future__ import annotations

import json
from pathlib import Path

from clihelp import Cli

from directorate.persistence.embedded import stop_embedded_server


def test_status_and_stop_of_the_embedded_server(cli: Cli, tmp_path: Path) -> None:
    del cli.env["DIRECTORATE_DSN"]  # the embedded server of this test's home
    home = Path(cli.env["DIRECTORATE_HOME"])
    try:
        check_status_and_stop(cli, home)
    finally:
        cli.kill_all()
        stop_embedded_server(home)  # it would outlive the test's folder


def check_status_and_stop(cli: Cli, home: Path) -> None:
    before = json.loads(cli("db", "status", "--json").stdout)
    assert before["initialised"] is False and before["running"] is False

    daemon = cli.daemon()  # starts the server, and uses it
    daemon.wait_for_line("waiting for commands")
    status = json.loads(cli("db", "status", "--json").stdout)
    assert status["running"] and status["pgdata"] == str(home / "pgdata")
    assert [e["pid"] for e in status["engines"]] == [daemon.popen.pid]
    assert "1 live engine(s)" in cli("db", "status").stdout

    refused = cli("db", "stop")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"directorate: 1 live engine(s) use the embedded server (pid {daemon.popen.pid}): "
        "stop them first, or pass --force"
    )
    assert json.loads(cli("db", "status", "--json").stdout)["running"]  # nothing changed

    assert daemon.stop() == 0
    stopped = cli("db", "stop")
    assert stopped.returncode == 0 and f"(pid {status['pid']})" in stopped.stdout
    after = json.loads(cli("db", "status", "--json").stdout)
    assert after["initialised"] and not after["running"]
    again = cli("db", "stop")
    assert again.returncode == 0 and "is not running" in again.stdout
    assert cli("list").returncode == 0  # the next command starts it again
    assert cli("db", "stop", "--force").returncode == 0
