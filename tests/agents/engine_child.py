#!/usr/bin/env python3
"""An engine in a child process, to be killed by a test: engine_child.py DSN LOG_DIR SCRIPT [ID].

Without ID it submits and starts a directive with explicit steps and prints its id;
either way it then runs until killed. SCRIPT is the scripted agent's script, or a
directive file (``*.toml``, with its own ``[agent]``), which is then the directive.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from directorate.actors import DirectiveSpec, Engine, EngineConfig, StepSpec
from directorate.actors.directive_file import load_directive_file

sys.path.insert(0, str(Path(__file__).parent))
from green import GreenVerifier
from scripted import scripted_runner


def main() -> None:
    dsn, log_dir, script = sys.argv[1:4]
    directive_file = script.endswith(".toml")
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=None if directive_file else scripted_runner(script),
            log_dir=Path(log_dir),
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            # Killed by its test: the engine that recovers takes over soon after.
            lease_ttl_s=1.5,
            heartbeat_interval_s=0.3,
        )
    )
    if len(sys.argv) == 4 and directive_file:
        directive_id = engine.submit(load_directive_file(script))
        engine.start_directive(directive_id)
        print(directive_id, flush=True)
    elif len(sys.argv) == 4:
        directive_id = engine.submit(
            DirectiveSpec(
                title="Crash me",
                goal="Survive a SIGKILL",
                autonomy_level="full_auto",
                steps=[
                    StepSpec(name="first"),
                    StepSpec(name="second", depends_on=["first"]),
                    StepSpec(name="third", depends_on=["second"]),
                ],
            )
        )
        engine.start_directive(directive_id)
        print(directive_id, flush=True)
    else:
        directive_id = uuid.UUID(sys.argv[4])
        status = engine.wait(directive_id, timeout=120)
        print(status, flush=True)
        engine.shutdown()
        return
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
