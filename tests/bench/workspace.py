"""Workspace benchmark (by hand, not in CI): one step's workspace on a large repository.

    python tests/bench/workspace.py [--files 10000] [--runs 7] [--changed 10]
                                    [--in DIR | --keep DIR]

Builds a repository of ``--files`` small text files in nested folders (one commit),
makes a result branch, then per run times what the engine does for one step: a new
worktree from the result branch (``ensure_worktree``), ``commit_all`` after the
"agent" changed ``--changed`` files (not timed), ``merge_step`` into
the result branch (merge-tree, commit-tree, update-ref), and ``remove_worktree``.
Prints the median, min and max of each over the runs, and the sum of the medians.

For scale, each run also times plain ``git worktree add`` and ``git worktree remove
--force`` of the same tree: what git itself costs, and so what the package adds. Most
of a new worktree is the file system writing 10,000 files: ``--in /dev/shm`` (tmpfs)
against the default temporary folder (usually a disk) shows how much.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from directorate.actors import workspace as ws

T = TypeVar("T")
_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def git(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, env=_ENV, check=True
    )
    return done.stdout.strip()


def make_repository(path: Path, files: int) -> float:
    """``files`` small files as 10 x 10 folders of files/100 each, one commit; seconds taken."""
    start = time.perf_counter()
    path.mkdir(parents=True)
    git(path, "init", "-q", "--initial-branch=main")
    for index in range(files):
        folder = path / f"pkg{index % 10}" / f"mod{(index // 10) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:05}.txt").write_text(
            "".join(f"line {n} of file {index}\n" for n in range(20))
        )
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "10,000 files")
    return time.perf_counter() - start


def timed(results: dict[str, list[float]], name: str, call: Callable[..., T], *args: Any) -> T:
    start = time.perf_counter()
    value = call(*args)
    results.setdefault(name, []).append(time.perf_counter() - start)
    return value


def run(root: Path, files: int, runs: int, changed: int) -> None:
    user = root / "user"
    home = root / "home"
    built = make_repository(user, files)
    repo = ws.find_repository(user)
    assert repo is not None
    directive = "be0c4a11"
    result = ws.create_branch(repo, ws.branch_name(directive), ws.resolve_base(repo).sha)
    tracked = git(user, "ls-files").splitlines()
    results: dict[str, list[float]] = {}
    for attempt in range(runs):
        step = f"step-{attempt}"
        start = git(user, "rev-parse", f"refs/heads/{result.name}")
        path = ws.worktree_path(home, directive, step)
        branch = ws.branch_name(directive, step)
        worktree = timed(
            results, "ensure_worktree (new)", ws.ensure_worktree, repo, path, branch, start
        )
        # The agent's work (not timed): `changed` files edited, spread over the tree.
        # commit_all's `add --all` is then the first look at this checkout, and git does
        # not trust the timestamps of files written in the second its index was ("racy
        # git"): it re-reads them once, ~170 ms of the figure on 10,000 files. An agent
        # that runs `git status` pays it instead.
        for n in range(changed):
            name = tracked[(attempt * changed + n) * 37 % len(tracked)]
            with (worktree.path / name).open("a") as f:
                f.write(f"edited by {step}\n")
        committed = timed(
            results,
            f"commit_all ({changed} files)",
            functools.partial(ws.commit_all, base=start),
            worktree.path,
            "step",
        )
        assert committed.committed and committed.stat.files == changed, committed
        merged = timed(results, "merge_step", ws.merge_step, repo, result.name, branch, "merge")
        assert isinstance(merged, ws.Merged), merged
        timed(results, "remove_worktree", ws.remove_worktree, repo, worktree.path)
        raw = str(root / "raw")
        timed(
            results,
            "(git worktree add)",
            git,
            user,
            "worktree",
            "add",
            "-q",
            "--detach",
            raw,
            start,
        )
        timed(results, "(git worktree remove)", git, user, "worktree", "remove", "--force", raw)
    version = git(user, "version")
    fs = subprocess.run(
        ["stat", "-f", "-c", "%T", str(root)], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"{version}; {files} files ({built:.1f} s to build) in {root} ({fs}); "
        f"{runs} runs, {changed} changed"
    )
    print(f"{'operation':<26} {'median ms':>10} {'min ms':>10} {'max ms':>10}")
    total = 0.0
    for name, seconds in results.items():
        median = statistics.median(seconds)
        if not name.startswith("("):  # the plain git baseline is not part of a step
            total += median
        print(
            f"{name:<26} {median * 1000:>10.1f} {min(seconds) * 1000:>10.1f} "
            f"{max(seconds) * 1000:>10.1f}"
        )
    print(f"{'one step (sum of medians)':<26} {total * 1000:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--in", dest="within", type=Path, help="make the scratch folder here")
    parser.add_argument("--keep", type=Path, help="build in this (new) folder and keep it")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs: at least 5, for a median worth the name")
    if args.keep:
        run(args.keep, args.files, args.runs, args.changed)
        return
    with tempfile.TemporaryDirectory(prefix="directorate-bench-", dir=args.within) as scratch:
        run(Path(scratch), args.files, args.runs, args.changed)


if __name__ == "__main__":
    main()
