"""The HTTP API and dashboard over a real engine and PostgreSQL: every route, every
way a request is refused (and that a refused one changes nothing), every error."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from web_helpers import TOKEN, CallableAgent, Gate, diamond, wait_for

from directorate.actors import DirectiveStatus
from directorate.actors.web.auth import COOKIE, CSRF_HEADER, TOKEN_ENV, Keys, load_token

SOME_ID = "00000000-0000-4000-8000-000000000000"
ROUTES = [
    ("GET", "/api/directives"),
    ("POST", "/api/directives"),
    ("GET", "/api/directives/{id}"),
    ("GET", "/api/directives/{id}/events"),
    ("GET", "/api/directives/{id}/diff"),
    ("POST", "/api/directives/{id}/pause"),
    ("POST", "/api/directives/{id}/resume"),
    ("POST", "/api/directives/{id}/stop"),
    ("POST", "/api/directives/{id}/regenerate"),
    ("GET", "/api/approvals"),
    ("POST", "/api/approvals/{approval}/approve"),
    ("POST", "/api/approvals/{approval}/deny"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/approvals"),
    ("GET", "/directives/{id}"),
    ("GET", "/directives/{id}/live"),
    ("GET", "/static/live.js"),
]


def held(engine_factory: Any, cost_usd: float = 0.0, **fields: Any) -> tuple[Any, Gate, uuid.UUID]:
    """An engine whose step agents wait for their gate, and a diamond directive on it
    whose first step is running."""
    gate = Gate(cost_usd=cost_usd)
    engine = engine_factory(runner=CallableAgent(steps={"*": gate}).runner())
    directive_id = engine.submit(diamond(**fields))
    engine.start_directive(directive_id)
    wait_for(lambda: engine.snapshot(directive_id).steps[0].status == "running")
    return engine, gate, directive_id


def commands_stored(engine: Any) -> int:
    with engine.db.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM directive_commands").fetchone()
    return int(row[0])


@pytest.mark.timeout(120)
def test_every_route_refuses_a_request_without_the_token_and_changes_nothing(
    engine_factory: Any, client_for: Any
) -> None:
    engine, gate, directive_id = held(engine_factory, cost_usd=2.0, max_total_cost_usd=1.0)
    gate.open("a")  # $2 of $1: the breaker trips and asks a human
    approval = wait_for(lambda: engine.snapshot(directive_id).pending_approvals, timeout=30)
    # The step's work is still judged and merged after the pause: wait until it is,
    # so that nothing but the requests could change the directive from here.
    wait_for(lambda: engine.snapshot(directive_id).steps[0].status == "passed", timeout=30)
    before = (engine.db.reads.directive(directive_id), commands_stored(engine))
    anonymous = client_for(engine, bearer=False)
    body = {"title": "x", "goal": "y"}
    for method, template in ROUTES:
        path = template.format(id=directive_id, approval=approval[0].id)
        missing = anonymous.request(method, path, json=body if method == "POST" else None)
        assert missing.status_code == 401, (method, path, missing.text)
        wrong = anonymous.request(
            method,
            path,
            headers={"Authorization": "Bearer nope"},
            json=body if method == "POST" else None,
        )
        assert wrong.status_code == 403, (method, path, wrong.text)
        forged = anonymous.request(
            method,
            path,
            headers={"Cookie": f"{COOKIE}={'0' * 64}"},
            json=body if method == "POST" else None,
        )
        assert forged.status_code == 403, (method, path, forged.text)
        if path.startswith(("/api/", "/metrics")):
            assert "error" in missing.json() and missing.headers["www-authenticate"] == "Bearer"
    assert (engine.db.reads.directive(directive_id), commands_stored(engine)) == before
    assert engine.db.reads.directives(limit=10) == [before[0]]  # nothing was submitted
    assert anonymous.get("/healthz").json() == {"ok": True}  # the one open route


def test_the_token_is_made_once_owner_only_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token, path = load_token(tmp_path / "home")
    assert path == tmp_path / "home" / "api-token" and len(token) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_token(tmp_path / "home") == (token, path)  # made once, then read
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert load_token(tmp_path / "home") == ("from-the-environment", None)
    keys = Keys(token)
    assert keys.session != token and keys.csrf != token  # the cookie never holds it


@pytest.mark.timeout(120)
def test_a_browser_session_from_the_token_link_and_its_csrf_protection(
    engine_factory: Any, client_for: Any
) -> None:
    engine, _, directive_id = held(engine_factory)
    browser = client_for(engine, bearer=False)
    assert browser.get("/?token=wrong").status_code == 403
    login = browser.get(f"/?token={TOKEN}")
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "Diamond" in page.text
    csrf = Keys(TOKEN).csrf
    assert f'content="{csrf}"' in page.text  # the page carries the value for its requests

    pause = f"/api/directives/{directive_id}/pause"
    assert browser.post(pause).status_code == 403  # the cookie alone: a cross-site form
    cross = browser.post(pause, headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert commands_stored(engine) == 0
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.ACTIVE
    paused = browser.post(pause, headers={CSRF_HEADER: csrf, "Origin": "http://testserver"})
    assert paused.status_code == 200 and paused.json()["status"] == "applied"
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.PAUSED


@pytest.mark.timeout(120)
def test_reading_directives_their_chain_events_and_pages(
    engine_factory: Any, client_for: Any
) -> None:
    engine, gate, directive_id = held(engine_factory)
    api = client_for(engine)

    [listed] = api.get("/api/directives").json()
    assert {listed["id"], listed["title"], listed["status"]} == {
        str(directive_id),
        "Diamond",
        "active",
    }
    detail = api.get(f"/api/directives/{directive_id}").json()
    steps = {s["name"]: s for s in detail["steps"]}
    assert set(steps) == {"a", "b", "c", "d"} and steps["a"]["status"] == "running"
    assert steps["b"]["editor_x"] > steps["a"]["editor_x"]  # the layered layout's positions
    assert steps["b"]["editor_y"] != steps["c"]["editor_y"]
    assert detail["approvals"] == [] and detail["chain"]["directive_id"] == str(directive_id)

    events = api.get(f"/api/directives/{directive_id}/events").json()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 3
    later = api.get(f"/api/directives/{directive_id}/events", params={"after": seqs[1]}).json()
    assert [e["seq"] for e in later] == seqs[2:]

    page = api.get(f"/directives/{directive_id}")
    assert page.status_code == 200
    assert page.text.count('class="step"') == 4 and 'data-status="running"' in page.text
    gate.open("a")
    wait_for(
        lambda: (
            'data-name="a" data-status="passed"' in api.get(f"/directives/{directive_id}/live").text
        )
    )
    assert api.get("/static/live.js").text.startswith("// directorate")


@pytest.mark.timeout(120)
def test_bad_requests_get_one_line_json_errors_with_their_status(
    engine_factory: Any, client_for: Any
) -> None:
    engine, _, directive_id = held(engine_factory)
    api = client_for(engine)
    cases = [
        ("GET", f"/api/directives/{SOME_ID}", None, 404),
        ("GET", "/api/directives/not-an-id", None, 400),
        ("GET", f"/api/directives/{SOME_ID}/events", None, 404),
        ("GET", f"/api/directives/{directive_id}/events?after=x", None, 400),
        ("GET", "/api/directives?limit=0", None, 400),
        ("POST", f"/api/directives/{SOME_ID}/pause", {}, 404),
        ("POST", f"/api/directives/{directive_id}/explode", {}, 404),
        ("POST", f"/api/approvals/{SOME_ID}/approve", {}, 404),
        ("POST", f"/api/approvals/{SOME_ID}/shrug", {}, 404),
        ("POST", "/api/directives", {"title": "t"}, 400),
        ("POST", "/api/directives", {"title": "t", "goal": "g", "colour": "red"}, 400),
        ("POST", "/api/directives", {"title": "t\x00", "goal": "g"}, 400),
        ("POST", "/api/directives", {"title": "t", "goal": "g", "max_total_cost_usd": 1e300}, 400),
        ("POST", "/api/directives", [1, 2], 400),
        ("POST", f"/api/directives/{directive_id}/pause", {"by": 5}, 400),
        ("POST", f"/api/directives/{directive_id}/regenerate", {"reason": "x" * 10_001}, 400),
        ("POST", f"/api/approvals/{SOME_ID}/deny", {"note": "a\x00b"}, 400),
        ("POST", "/api/directives", {"title": "t", "goal": "g", "by": ["me"]}, 400),
        ("GET", "/api/nothing-here", None, 404),
        ("DELETE", "/api/directives", None, 405),
    ]
    for method, path, body, status in cases:
        answer = api.request(method, path, json=body)
        assert answer.status_code == status, (method, path, answer.text)
        message = answer.json()["error"]
        assert message and "\n" not in message, (method, path, message)
    not_json = api.post(
        "/api/directives", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    huge = api.post("/api/directives", content=b" " * (2 * 1024 * 1024))
    assert huge.status_code == 413
    cyclic = {
        "title": "t",
        "goal": "g",
        "steps": [{"name": "x", "depends_on": ["y"]}, {"name": "y", "depends_on": ["x"]}],
    }
    answer = api.post("/api/directives", json=cyclic)
    assert answer.status_code == 400 and "cycle" in answer.json()["error"].lower()
    assert [d.id for d in engine.db.reads.directives(limit=10)] == [directive_id]
    assert commands_stored(engine) == 0


@pytest.mark.timeout(120)
def test_commands_answer_applied_or_rejected_with_the_reason(
    engine_factory: Any, client_for: Any
) -> None:
    engine, _, directive_id = held(engine_factory)
    api = client_for(engine)
    base = f"/api/directives/{directive_id}"
    paused = api.post(f"{base}/pause", json={"by": "ci"})
    assert paused.status_code == 200
    assert paused.json() | {"command_id": None} == {
        "command": "pause",
        "command_id": None,
        "status": "applied",
        "directive_status": "paused",
    }
    again = api.post(f"{base}/pause")
    assert again.status_code == 409 and again.json()["status"] == "rejected"
    assert again.json()["reason"]
    assert api.post(f"{base}/resume").json()["status"] == "applied"
    stopped = api.post(f"{base}/stop")
    assert stopped.status_code == 200 and stopped.json()["directive_status"] == "cancelled"
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.CANCELLED


@pytest.mark.timeout(120)
def test_a_directive_submitted_over_http_runs_and_an_approval_is_answered(
    engine_factory: Any, client_for: Any
) -> None:
    agent = CallableAgent(steps={"*": lambda task, cancel: {"cost_usd": 2.0}})
    engine = engine_factory(runner=agent.runner())
    api = client_for(engine)
    spec = {
        "title": "Over HTTP",
        "goal": "Run two steps",
        "autonomy_level": "full_auto",
        "max_total_cost_usd": 1.0,
        "steps": [{"name": "one"}, {"name": "two", "depends_on": ["one"]}],
    }
    created = api.post("/api/directives", json=spec | {"by": "ci"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "applied"
    directive_id = uuid.UUID(created.json()["id"])
    # $2 spent of $1: the breaker trips and asks a human.
    [approval] = wait_for(lambda: api.get("/api/approvals").json(), timeout=30)
    assert approval["directive_id"] == str(directive_id)
    inbox = api.get("/approvals")
    assert approval["id"] in inbox.text and "approve" in inbox.text

    bad = api.post(
        f"/api/approvals/{approval['id']}/approve", json={"raise_limit": {"max_total_cost_usd": -5}}
    )
    assert bad.status_code == 400 and api.get("/api/approvals").json() == [approval]
    unknown = api.post(
        f"/api/approvals/{approval['id']}/approve", json={"raise_limit": {"max_fun": 5}}
    )
    assert unknown.status_code == 400
    approved = api.post(
        f"/api/approvals/{approval['id']}/approve",
        json={"by": "ci", "note": "fine", "raise_limit": {"max_total_cost_usd": 100}},
    )
    assert approved.status_code == 200 and approved.json()["status"] == "applied", approved.text
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    directive = engine.db.reads.directive(directive_id)
    assert directive.max_total_cost_usd == 100 and directive.total_cost_usd == pytest.approx(4.0)
    answered = api.post(f"/api/approvals/{approval['id']}/deny")
    assert answered.status_code == 409 and answered.json()["status"] == "rejected"


@pytest.mark.timeout(120)
def test_metrics_count_what_the_database_holds(engine_factory: Any, client_for: Any) -> None:
    agent = CallableAgent(steps={"*": lambda task, cancel: {"cost_usd": 0.25}})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(diamond())
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    text = client_for(engine).get("/metrics").text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert all(name.startswith("directorate_") for name in samples)
    assert samples['directorate_directives{status="completed"}'] == 1
    steps = engine.snapshot(directive_id).steps
    assert {str(s.status) for s in steps} == {"passed"}
    assert samples['directorate_steps{status="passed"}'] == len(steps)
    evaluations = engine.db.reads.evaluations_of_directive(directive_id)
    greens = sum(1 for e in evaluations if e.confidence_level == "green")
    assert greens >= 4 and samples['directorate_evaluations_total{confidence="green"}'] == greens
    assert samples["directorate_cost_usd_total"] == pytest.approx(1.0)
    assert samples["directorate_tasks_running"] == 0
    assert samples["directorate_approvals_pending"] == 0
    assert samples["directorate_lease_takeovers_total"] == 0
    assert samples["directorate_db_reconnects_total"] == 0
    assert samples["directorate_writer_batch_size_count"] >= 1
    assert (
        samples['directorate_writer_flush_seconds_bucket{le="+Inf"}']
        == samples["directorate_writer_flush_seconds_count"]
    )
    assert json.dumps(samples)  # every value parsed as a number


@pytest.mark.timeout(120)
def test_a_directive_with_a_workspace_shows_its_branches_and_diffs(
    engine_factory: Any, client_for: Any, tmp_path: Path
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "README.md").write_text("a project\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "start",
        ],
        check=True,
    )

    def write(name: str) -> Any:
        def step(task: Any, cancel: Any) -> dict[str, float]:
            (Path(task.workdir) / f"{name}.txt").write_text(f"{name}\n")
            return {"cost_usd": 0.0}

        return step

    agent = CallableAgent(steps={"left": write("left"), "right": write("right")})
    engine = engine_factory(runner=agent.runner(), worktree_dir=tmp_path / "worktrees")
    spec = {
        "title": "Two files",
        "goal": "Write them",
        "autonomy_level": "full_auto",
        "local_path": str(repo),
        "steps": [{"name": "left"}, {"name": "right"}],
    }
    api = client_for(engine)
    created = api.post("/api/directives", json=spec)
    assert created.status_code == 201, created.text
    directive_id = uuid.UUID(created.json()["id"])
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED

    whole = api.get(f"/api/directives/{directive_id}/diff")
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/plain")
    assert "+++ b/left.txt" in whole.text and "+++ b/right.txt" in whole.text
    left = api.get(f"/api/directives/{directive_id}/diff", params={"step": "left"}).text
    assert "+++ b/left.txt" in left and "right.txt" not in left
    unknown = api.get(f"/api/directives/{directive_id}/diff", params={"step": "nope"})
    assert unknown.status_code == 404 and "no step 'nope'" in unknown.json()["error"]
    page = api.get(f"/directives/{directive_id}").text
    assert f"/api/directives/{directive_id}/diff?step=left" in page
    assert "result branch <code>directorate/" in page
    _, _, no_workspace = held(engine_factory)
    refused = api.get(f"/api/directives/{no_workspace}/diff")
    assert refused.status_code == 400 and "no workspace" in refused.json()["error"]
