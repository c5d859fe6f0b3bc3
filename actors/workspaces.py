"""A directive's workspace as the engine uses it (issue 10; git in ``actors.workspace``).

- ``start_result_branch``: when a directive starts, the branch its passed steps are
  merged into, made from its base (``[workspace] base``, else the repository's HEAD).
- ``StepWorkspace``: around a step's agent, in the task's job: the step's worktree
  made (or found again, or re-made from its branch), setup run and ignored files
  copied into a new one, a killed attempt's leftovers discarded; after the agent,
  whatever it left uncommitted committed on the step branch.
- ``merge_step``: a passed step's branch merged into the result branch, in a job.

Every call blocks on git, so none runs on an actor's thread: the result branch is
made by the caller of ``Engine.start_directive``, the rest on the worker pools. A
git failure becomes a failed attempt (before the agent: it is not run), never an
exception in an actor.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import attrs

from directorate.persistence.errors import InvalidInput, NotFound, RunnerError
from directorate.persistence.models import (
    AgentSpec,
    Delivery,
    Directive,
    DirectiveSpec,
    Isolation,
    Step,
    Task,
    TaskStatus,
)
from directorate.verifiers.environment import CleanEnvironment

from . import workspace as git
from .runners import CommandRunner, TaskResult, WorkCommit, runner_for

SETUP_TIMEOUT_S = 1800.0


@attrs.frozen(kw_only=True)
class ResultBranch:
    """Where a directive's work goes, as recorded on its row when it starts."""

    repository: str
    base_ref: str | None
    base_sha: str
    result_branch: str


def start_result_branch(directive: Directive) -> ResultBranch | None:
    """The directive's result branch, made from its base; None when its steps share
    ``local_path`` (``isolation = "shared"``, or no repository there)."""
    if directive.workspace.isolation is Isolation.SHARED or not directive.local_path:
        return None
    repo = git.find_repository(directive.local_path)
    if repo is None:
        return None
    base = git.resolve_base(repo, directive.workspace.base)
    name = git.branch_name(directive.id)
    git.create_branch(repo, name, base.sha)  # kept as it is if a start was retried
    return ResultBranch(
        repository=str(repo.toplevel), base_ref=base.branch, base_sha=base.sha, result_branch=name
    )


def check_repository(spec: DirectiveSpec) -> None:
    """Steps get worktrees of their own only in a git repository with a commit to
    start from: anywhere else, sharing one folder must be asked for (it is unsafe
    with parallel steps). ``InvalidInput`` naming ``local_path`` otherwise."""
    if not spec.local_path or spec.workspace.isolation is Isolation.SHARED:
        return
    try:
        repo = git.find_repository(spec.local_path)
        empty = repo is not None and spec.workspace.base is None and git.head_commit(repo) is None
    except git.GitError as exc:
        raise InvalidInput(f"local_path: {exc}") from None
    if repo is None or empty:
        why = "is not in a git repository" if repo is None else "is in a repository with no commit"
        raise InvalidInput(
            f"local_path: {spec.local_path} {why}; make it one with a first commit, or set"
            ' [workspace] isolation = "shared" to let every step work in it directly'
            " (unsafe with parallel steps)"
        )


@attrs.frozen(kw_only=True)
class StepWorkspace:
    """What a step's jobs need of its workspace (the decision core builds it)."""

    repository: str
    worktree: str
    branch: str
    result_branch: str
    step_name: str
    setup: tuple[tuple[str, ...], ...] = ()
    copy: tuple[str, ...] = ()
    environment: CleanEnvironment | None = attrs.field(default=None, eq=False)
    """The agent's clean environment, for the setup commands."""
    update_first: bool = False
    """Merge the result branch in before the agent runs (it resolves a conflict)."""

    def prepare(self, task: Task) -> TaskResult | None:
        """Make the worktree ready for an attempt; a failed result if it cannot be."""
        try:
            repo = _repository(self.repository)
            start = git.branch_sha(repo, self.result_branch)
            if start is None:
                raise git.GitError(f"the result branch {self.result_branch} is gone")
            tree = git.ensure_worktree(repo, self.worktree, self.branch, start)
            if tree.state is git.WorktreeState.CREATED:
                git.copy_ignored(repo.toplevel, tree.path, self.copy)
                if self.setup:
                    env = self.environment.build({}) if self.environment else None
                    setup = git.run_setup(tree.path, self.setup, env=env, timeout_s=SETUP_TIMEOUT_S)
                    if not setup.ok:
                        return _failed(task, "workspace setup failed:\n" + _said(setup))
            # A killed attempt's half-done edits go; committed attempts leave nothing.
            git.discard_uncommitted(tree.path, branch=self.branch)
            if self.update_first:
                git.update_from(tree.path, self.result_branch)  # markers for the agent
        except git.GitError as exc:
            return _failed(task, f"workspace: {exc}")
        return None

    def finish(self, task: Task, result: TaskResult) -> TaskResult:
        """Commit what the agent left (its own commits stay); the result says what."""
        try:
            done = git.commit_all(
                self.worktree,
                f"directorate: {self.step_name}, attempt {task.attempt}",
                base=self.result_branch,
                branch=self.branch,
            )
        except git.GitError as exc:
            if result.status is not TaskStatus.SUCCEEDED:
                return result
            return attrs.evolve(result, status=TaskStatus.FAILED, error=f"workspace: {exc}")
        commit = WorkCommit(
            sha=done.head,
            committed=done.committed,
            files=done.stat.files,
            insertions=done.stat.insertions,
            deletions=done.stat.deletions,
            conflict_markers=done.conflict_markers,
        )
        return attrs.evolve(result, commit=commit)


def merge_step(workspace: StepWorkspace) -> git.Merged | git.Conflict:
    """The step's branch merged into the result branch (raises ``GitError``)."""
    repo = _repository(workspace.repository)
    return git.merge_step(
        repo,
        workspace.result_branch,
        workspace.branch,
        f"directorate: merge step {workspace.step_name}",
    )


def fork_point(workspace: StepWorkspace) -> str | None:
    """Where the step's branch left the result branch: what its diff is against."""
    try:
        repo = _repository(workspace.repository)
        return git.merge_base(repo, workspace.result_branch, workspace.branch)
    except git.GitError:
        return None


REVIEW_FOLDER = "_result"
"""The result branch's own checkout, beside the steps' worktrees (a step name is
kebab-case, so it cannot clash)."""


def review_checkout(directive: Directive, worktrees: Path) -> Path:
    """The result branch as it stands now, checked out for the directive review."""
    assert directive.repository and directive.result_branch
    repo = _repository(directive.repository)
    where = worktrees / git.short_id(directive.id) / REVIEW_FOLDER
    return git.checkout_detached(repo, where, directive.result_branch)


@attrs.frozen(kw_only=True)
class WrappedUp:
    """What became of a finished directive's workspace: events to record."""

    events: tuple[tuple[str, dict[str, object]], ...]


def wrap_up(directive: Directive, worktrees: Path, *, completed: bool) -> WrappedUp:
    """Deliver a completed directive's result branch as ``[workspace] deliver`` says,
    then remove its worktrees (the branches stay). Never raises: what went wrong is an
    event (``delivery_failed``, ``workspace_cleanup_failed``)."""
    events: list[tuple[str, dict[str, object]]] = []
    assert directive.repository and directive.result_branch
    branch = directive.result_branch
    try:
        repo = _repository(directive.repository)
    except git.GitError as exc:
        return WrappedUp(events=(("workspace_cleanup_failed", {"reason": str(exc)}),))
    deliver = directive.workspace.deliver
    if completed and deliver is not Delivery.BRANCH:
        events.append(_deliver(repo, directive, deliver))
    home = worktrees / git.short_id(directive.id)
    for folder in sorted(home.glob("*")):
        try:
            git.remove_worktree(repo, folder)
        except git.GitError as exc:
            events.append(("workspace_cleanup_failed", {"path": str(folder), "reason": str(exc)}))
    with contextlib.suppress(OSError):  # gone already, or something of the user's is left
        home.rmdir()
    try:
        git.prune(repo)
    except git.GitError as exc:
        events.append(("workspace_cleanup_failed", {"reason": str(exc)}))
    events.append(("workspace_removed", {"branch": branch}))
    return WrappedUp(events=tuple(events))


def remove_transcripts(
    agent: AgentSpec | None, tasks: Sequence[Task], worktrees: Path
) -> tuple[str, dict[str, object]] | None:
    """Remove what the agent's tool persisted for the sessions it ran in this
    directive's worktrees (Claude's project folder, Codex's rollout files): they
    go with the worktrees (issue 15 point 6). An event saying what was removed, or
    None when there was nothing."""
    if agent is None:
        return None
    try:
        runner = runner_for(agent, None)
    except RunnerError:
        return None
    if not isinstance(runner, CommandRunner):
        return None
    by_folder: dict[str, list[str]] = {}
    for task in tasks:
        if task.workdir and Path(task.workdir).is_relative_to(worktrees):
            by_folder.setdefault(task.workdir, [])
            if task.session_id:
                by_folder[task.workdir].append(task.session_id)
    removed, failed = 0, []
    for folder, sessions in sorted(by_folder.items()):
        for path in runner.session_files(Path(folder), sessions):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError as exc:
                failed.append(f"{path}: {exc}")
    if failed:
        return "workspace_cleanup_failed", {"transcripts": failed[:20]}
    if removed:
        return "transcripts_removed", {"kind": agent.kind, "count": removed}
    return None


def _deliver(
    repo: git.Repository, directive: Directive, deliver: Delivery
) -> tuple[str, dict[str, object]]:
    branch = directive.result_branch or ""
    base = directive.base_ref
    if base is None:
        return "delivery_failed", {
            "deliver": str(deliver),
            "branch": branch,
            "reason": "the work did not start from a branch (a commit or a detached HEAD)",
        }
    try:
        if deliver is Delivery.MERGE:
            outcome = git.deliver_merge(repo, base, branch)
        else:
            outcome = git.deliver_pull_request(
                repo,
                branch,
                base,
                title=directive.title,
                body=f"{directive.goal}\n\nMade by directorate (directive {directive.id}).",
                remote=directive.workspace.remote,
            )
    except git.GitError as exc:
        return "delivery_failed", {"deliver": str(deliver), "branch": branch, "reason": str(exc)}
    if isinstance(outcome, git.Refused):
        return "delivery_failed", {
            "deliver": str(deliver),
            "branch": branch,
            "reason": outcome.reason,
            "files": list(outcome.files),
            "pushed": outcome.pushed,
        }
    return "delivered", {
        "deliver": str(deliver),
        "branch": outcome.branch,
        "sha": outcome.sha,
        "url": outcome.url,
    }


def agent_environment(agent: AgentSpec | None) -> CleanEnvironment:
    """The agent's clean environment, which its worktree's setup commands get too."""
    if agent is None:
        return CleanEnvironment()
    return CleanEnvironment(pass_env=agent.pass_env, env=agent.env)


def _repository(path: str) -> git.Repository:
    repo = git.find_repository(path)
    if repo is None:
        raise git.GitError(f"{path} is no longer a git repository")
    return repo


def _failed(task: Task, message: str) -> TaskResult:
    return TaskResult(status=TaskStatus.FAILED, error=message, output_tail=message)


def _said(setup: git.SetupResult) -> str:
    last = setup.commands[-1]
    return f"$ {' '.join(last.argv)}\n{last.completed.output[-4000:]}"


def diff_of(directive: Directive, steps: list[Step], step_name: str | None = None) -> str:
    """The directive's diff since its base; or, for ``step_name``, what the step
    brought (its merge), or its work so far since it left the result branch.
    ``InvalidInput`` without a workspace, ``NotFound`` for an unknown step."""
    from .workspace import GitError, branch_name, diff, find_repository

    if not directive.result_branch or not directive.repository or not directive.base_sha:
        raise InvalidInput(f"directive {directive.id} has no workspace (its steps share a folder)")
    repo = find_repository(directive.repository)
    if repo is None:
        raise InvalidInput(f"{directive.repository} is no longer a git repository")
    base, head = directive.base_sha, directive.result_branch
    if step_name is not None:
        step = next((s for s in steps if s.name == step_name), None)
        if step is None:
            names = ", ".join(s.name for s in steps) or "none"
            raise NotFound(f"no step {step_name!r} in directive {directive.id} (steps: {names})")
        if step.merge_sha:  # what its merge brought into the result branch
            base, head = f"{step.merge_sha}^1", step.merge_sha
        else:  # its work so far, since it left the result branch
            branch = step.branch or branch_name(directive.id, step.name)
            base, head = directive.result_branch, branch
    try:
        return diff(repo, base, head)
    except GitError as exc:
        raise InvalidInput(str(exc)) from None
