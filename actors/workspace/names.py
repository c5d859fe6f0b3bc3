"""Branch names and worktree folders, built from a directive id and a step name.

A directive's result branch is ``directorate/<short-id>``: the name the user sees,
reviews, merges or opens a pull request from. A step's branch is
``directorate/<short-id>-steps/<step>``. They cannot be ``directorate/<short-id>`` and
``directorate/<short-id>/<step>``: a ref is a file under ``refs/heads/``, and a file
cannot also be a folder. Putting the steps in a sibling folder keeps the result
branch's short name, lists every branch of a directive together (``git branch --list
'directorate/<short-id>*'``), and no step name can collide with it (a ``.../result``
branch would make ``result`` a forbidden step name). A short id is hex, so no other
directive's branch can end in ``-steps``.

Step names are kebab-case (the engine's own rule), so a name can never climb out of
its folder (``..``), start an option (``-``) or hold characters git refuses.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from .errors import InvalidName

#: the engine's step names (persistence.validation.STEP_NAME): kebab-case
STEP_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: a folder name and a ref component are at most 255 bytes; ``.lock`` is appended to refs
MAX_STEP_NAME = 200
SHORT_ID = re.compile(r"^[0-9a-f]{4,32}$")
BRANCH_PREFIX = "directorate/"
STEPS_SUFFIX = "-steps"


def short_id(directive: uuid.UUID | str) -> str:
    """The first 8 hex digits of a directive id (as ``directorate show`` prints it), or
    a short id given as it is (validated: 4 to 32 lowercase hex digits)."""
    if isinstance(directive, uuid.UUID):
        return directive.hex[:8]
    if not isinstance(directive, str) or not SHORT_ID.match(directive):
        raise InvalidName(f"{directive!r} is not a short directive id (4-32 lowercase hex digits)")
    return directive


def check_step_name(step: str) -> str:
    """``step`` if it can name a branch and a folder, else :class:`InvalidName`."""
    if not isinstance(step, str) or not STEP_NAME.match(step):
        raise InvalidName(f"step name {step!r} is not kebab-case (like 'fix-parser')")
    if len(step) > MAX_STEP_NAME:
        raise InvalidName(f"step name {step[:20]!r}... is longer than {MAX_STEP_NAME} characters")
    return step


def branch_name(directive: uuid.UUID | str, step: str | None = None) -> str:
    """``directorate/<short-id>`` (the result branch) when ``step`` is None, else
    ``directorate/<short-id>-steps/<step>``."""
    sid = short_id(directive)
    if step is None:
        return f"{BRANCH_PREFIX}{sid}"
    return f"{BRANCH_PREFIX}{sid}{STEPS_SUFFIX}/{check_step_name(step)}"


def worktree_path(home: Path, directive: uuid.UUID | str, step: str) -> Path:
    """Where a step's worktree lives: ``<home>/worktrees/<short-id>/<step>`` (``home`` is
    ``$DIRECTORATE_HOME``; outside every user repository)."""
    return Path(home) / "worktrees" / short_id(directive) / check_step_name(step)
