"""The per-repository lock: threads of one engine, and two engine processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from workspace_helpers import DIRECTIVE, files_at, git, wait_for_file, write

from directorate.actors import workspace as ws
from directorate.actors.workspace.locking import repository_lock


def hold_in_another_process(
    common_dir: Path, seconds: float, signal: Path
) -> subprocess.Popen[bytes]:
    """A second engine process holding the repository's lock for ``seconds``."""
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from directorate.actors.workspace.locking import repository_lock
        with repository_lock(pathlib.Path({str(common_dir)!r}), "other engine"):
            pathlib.Path({str(signal)!r}).write_text("held")
            time.sleep({seconds})
        """
    )
    return subprocess.Popen([sys.executable, "-c", script])


def test_another_process_holding_the_lock_is_waited_for(
    repo: ws.Repository, tmp_path: Path
) -> None:
    signal = tmp_path / "held"
    other = hold_in_another_process(repo.common_dir, 1.0, signal)
    try:
        wait_for_file(signal, within_s=30)
        start = time.monotonic()
        with repository_lock(repo.common_dir, "test"):
            waited = time.monotonic() - start
        assert waited > 0.3
    finally:
        other.wait(timeout=30)


def test_a_lock_held_too_long_is_a_clear_error(repo: ws.Repository, tmp_path: Path) -> None:
    signal = tmp_path / "held"
    other = hold_in_another_process(repo.common_dir, 5.0, signal)
    try:
        wait_for_file(signal, within_s=30)
        with (
            pytest.raises(ws.GitError, match=r"test: another process held .* too long"),
            repository_lock(repo.common_dir, "test", timeout_s=0.3),
        ):
            pass
    finally:
        other.kill()
        other.wait(timeout=30)
    with repository_lock(repo.common_dir, "test", timeout_s=5):  # a killed holder frees it
        pass


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(
    repo: ws.Repository,
) -> None:
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        # Twice: an operation that calls another takes it again.
        with (
            repository_lock(repo.common_dir, "holder"),
            repository_lock(repo.common_dir, "holder, again"),
        ):
            inside.set()
            release.wait(timeout=10)
            order.append("holder")

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(timeout=10)
    with (
        pytest.raises(ws.GitError, match="stayed locked"),
        repository_lock(repo.common_dir, "waiter", timeout_s=0.2),
    ):
        pass
    release.set()
    with repository_lock(repo.common_dir, "waiter"):
        order.append("waiter")
    thread.join(timeout=10)
    assert order == ["holder", "waiter"]


def test_two_engine_processes_merging_into_one_result_both_land(
    repo: ws.Repository, home: Path, result: ws.Branch, tmp_path: Path
) -> None:
    names = [f"p{i}" for i in range(6)]
    for name in names:
        made = ws.ensure_worktree(
            repo,
            ws.worktree_path(home, DIRECTIVE, name),
            ws.branch_name(DIRECTIVE, name),
            result.sha,
        )
        write(made.path / f"{name}.txt", f"{name}\n")
        ws.commit_all(made.path, name, base=result.sha)
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import pathlib, sys, time
        from directorate.actors import workspace as ws
        repo = ws.find_repository(pathlib.Path({str(repo.toplevel)!r}))
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.01)
        for name in sys.argv[1:]:
            merged = ws.merge_step(repo, {result.name!r}, ws.branch_name({DIRECTIVE!r}, name), name)
            assert isinstance(merged, ws.Merged), merged
        """
    )
    engines = [
        subprocess.Popen([sys.executable, "-c", script, *names[i::2]], stderr=subprocess.PIPE)
        for i in range(2)
    ]
    time.sleep(1.0)  # both imported and waiting
    go.write_text("go")
    for engine in engines:
        _, err = engine.communicate(timeout=60)
        assert engine.returncode == 0, err.decode()
    landed = files_at(repo.toplevel, result.name)
    assert all(f"{name}.txt" in landed for name in names)
    first_parents = git(repo.toplevel, "log", "--first-parent", "--format=%s", result.name)
    assert sorted(first_parents.splitlines()[:-1]) == names
