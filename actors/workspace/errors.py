"""The workspace package's one error (it imports nothing from the rest of the engine)."""

from __future__ import annotations


class GitError(Exception):
    """A git operation failed.

    The message is one line naming the operation and git's reason, e.g.
    ``merge_step: git update-ref failed: cannot lock ref 'refs/heads/directorate/1a2b3c4d'``,
    so the engine can put it in an event as it is. The docstring's first line is the
    default message.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip().splitlines()[0])


class InvalidName(GitError, ValueError):
    """That name cannot be used for a branch or a worktree.

    Also a ``ValueError``: it is the caller's input that is wrong, not git.
    """
