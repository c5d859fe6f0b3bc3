"""The suite is hermetic: the caller's DIRECTORATE_* variables never reach a test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def test_no_variable_of_the_caller_is_seen() -> None:
    # .ci/run sets hostile DIRECTORATE_DSN, DIRECTORATE_HOME and DIRECTORATE_TEST_DSN.
    seen = {n: v for n, v in os.environ.items() if n.startswith("DIRECTORATE_")}
    assert set(seen) == {"DIRECTORATE_HOME"}
    home = Path(seen["DIRECTORATE_HOME"])
    assert home.is_dir() and home.is_relative_to(Path(tempfile.gettempdir()))
