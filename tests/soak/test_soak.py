"""Soak: 200 directives x a six-step DAG at once, instant tasks, an always-green verifier."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from directorate.actors import (
    CallableRunner,
    DirectiveSpec,
    DirectiveStatus,
    Engine,
    EngineConfig,
    StepSpec,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from green import GreenVerifier

DIRECTIVES = 200
SIX_STEP_DAG = [
    StepSpec(name="fetch"),
    StepSpec(name="parse", depends_on=["fetch"]),
    StepSpec(name="index", depends_on=["fetch"]),
    StepSpec(name="model", depends_on=["parse", "index"]),
    StepSpec(name="render", depends_on=["model"]),
    StepSpec(name="report", depends_on=["model"]),
]


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_many_directives_at_once(dsn: str, tmp_path: Path) -> None:
    baseline_threads = threading.active_count()
    started = time.monotonic()
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=CallableRunner(lambda task, cancel: None),
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            max_concurrent_tasks=16,
            max_concurrent_evaluations=8,
            log_dir=tmp_path / "logs",
        )
    )
    try:
        ids = [
            engine.submit(
                DirectiveSpec(
                    title=f"soak {i}",
                    goal="soak",
                    autonomy_level="full_auto",
                    steps=SIX_STEP_DAG,
                )
            )
            for i in range(DIRECTIVES)
        ]
        for directive_id in ids:
            engine.start_directive(directive_id)
        for directive_id in ids:
            assert engine.wait(directive_id, timeout=240) is DirectiveStatus.COMPLETED
        rows = _counts(engine)
    finally:
        engine.shutdown()
    elapsed = time.monotonic() - started
    assert rows["passed_transitions"] == DIRECTIVES * len(SIX_STEP_DAG)
    assert rows["distinct_passed_steps"] == DIRECTIVES * len(SIX_STEP_DAG)
    assert rows["gaps"] == 0
    deadline = time.monotonic() + 30
    while threading.active_count() > baseline_threads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= baseline_threads, [t.name for t in threading.enumerate()]
    print(f"\nsoak: {DIRECTIVES} directives x {len(SIX_STEP_DAG)} steps in {elapsed:.1f} s")


def _counts(engine: Any) -> dict[str, int]:
    with engine.db.pool.connection() as conn:
        passed, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT step_id) FROM directive_events"
            " WHERE event_type = 'step_status_changed' AND data->>'new_status' = 'passed'"
        ).fetchone()
        gaps = conn.execute(
            "SELECT count(*) FROM (SELECT directive_id, count(*) AS n, max(seq) AS top"
            " FROM directive_events GROUP BY directive_id) s WHERE n <> top"
        ).fetchone()[0]
    return {"passed_transitions": passed, "distinct_passed_steps": distinct, "gaps": gaps}
