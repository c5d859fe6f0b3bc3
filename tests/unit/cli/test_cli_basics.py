"""Command line pieces that need no database: ids, exit codes for bad files, event lines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from directorate.actors.cli import app as cli
from directorate.actors.cli import views
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import Event, Step, StepStatus, StepType


def test_a_full_uuid_parses_to_a_uuid() -> None:
    value = uuid.uuid4()
    assert cli.parse_id_prefix(str(value).upper()) == value


@pytest.mark.parametrize("prefix", ["3f2a", "3F2A", "3f2a91c0-", " 3f2a "])
def test_a_prefix_is_lower_case_hex(prefix: str) -> None:
    assert cli.parse_id_prefix(prefix) == prefix.strip().lower()


@pytest.mark.parametrize("bad", ["", "xyz", "3f2a%", "3f2a_", "'; drop table", "a" * 37])
def test_anything_else_is_bad_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        cli.parse_id_prefix(bad)


def test_a_bad_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `run` puts its own Python first on PATH
    path = tmp_path / "d.toml"
    path.write_text('title = "t"\ngoal = "g"\nsurprise = 1\n')
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "surprise: unknown key" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["frobnicate"])
    assert exited.value.code == 2


def _step(name: str, deps: list[uuid.UUID], y: float = 100.0) -> Step:
    return Step(
        id=uuid.uuid4(),
        chain_id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        name=name,
        step_type=StepType.IMPLEMENT,
        depends_on=deps,
        editor_y=y,
        status=StepStatus.PASSED,
        attempt=1,
        confidence_score=0.9,
    )


def test_chain_tree_indents_by_dependency() -> None:
    a = _step("fix-add", [])
    b = _step("fix-multiply", [], y=250.0)
    c = _step("run-tests", [a.id, b.id])
    lines = views.chain_tree([c, b, a], [])
    assert [line.split()[0] for line in lines] == ["fix-add", "fix-multiply", "└─"]
    assert "after fix-add, fix-multiply" in lines[2]
    assert "passed" in lines[0] and "0.90" in lines[0]


def test_events_read_as_one_line() -> None:
    event = Event(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        seq=7,
        event_type="evaluation_completed",
        data={
            "step_name": "fix-add",
            "confidence_level": "red",
            "composite_score": 0.0,
            "summary": "test-add failed\nwith details",
        },
        created_at=datetime.now(UTC),
    )
    line = views.event_line(event)
    assert "\n" not in line
    assert "fix-add: red (0.00): test-add failed with details" in line
    unknown = Event(
        id=uuid.uuid4(), directive_id=uuid.uuid4(), seq=1, event_type="new_thing", data={"x": 1}
    )
    assert views.describe_event(unknown) == "new thing x=1"
    killed = Event(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        seq=2,
        event_type="stale_agent_killed",
        data={"task_id": "0123456789abcdef", "pid": 42, "detail": "stopped pid 41, 42"},
    )
    assert views.describe_event(killed) == "old agent of task 01234567 stopped: stopped pid 41, 42"


def test_an_unavailable_agent_is_described_with_the_tools_words() -> None:
    def unavailable(step_name: str | None) -> Event:
        data = {"message": "Not logged in · Please run /login", "attempt": 1}
        return Event(
            id=uuid.uuid4(),
            directive_id=uuid.uuid4(),
            seq=3,
            event_type="agent_unavailable",
            data={**data, "step_name": step_name},
        )

    assert views.describe_event(unavailable("build")) == (
        "build: the agent could not reach its model (attempt 1): "
        "Not logged in · Please run /login; paused, approve to retry"
    )
    assert views.describe_event(unavailable(None)).startswith("planning: the agent could not")
