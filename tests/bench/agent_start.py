"""What running an agent costs the engine beyond the agent itself (by hand, not in CI).

    python tests/bench/agent_start.py [--tasks 20] [--runner new|MODULE_PATH]

Runs ``/bin/true`` as the agent of ``--tasks`` tasks, one after another, through a
``CommandRunner``: the time is the runner's own (log files, environment, starting
and ending the agent under its supervisor, reading the report). ``--runner PATH``
loads ``CommandRunner`` from another copy of ``actors/runners.py`` (for example the
one before the supervisor: ``git show REV:actors/runners.py > /tmp/old_runners.py``)
to compare. Time it from outside with farm-bench; divide by the tasks.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from directorate.persistence.models import Task, TaskKind, TaskStatus


def runner_class(where: str) -> Any:
    if where == "new":
        from directorate.actors import CommandRunner

        return CommandRunner
    spec = importlib.util.spec_from_file_location("other_runners", where)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CommandRunner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--runner", default="new")
    args = parser.parse_args()
    runner = runner_class(args.runner)(["/bin/true"])
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.tasks):
            task = Task(
                id=uuid.uuid4(),
                directive_id=uuid.uuid4(),
                kind=TaskKind.STEP,
                step_id=uuid.uuid4(),
                instructions="nothing",
                workdir=folder,
                log_path=str(Path(folder) / "task.log"),
            )
            result = runner.run(task, threading.Event())
            assert result.status is TaskStatus.SUCCEEDED, result


if __name__ == "__main__":
    main()
