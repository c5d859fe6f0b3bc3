"""Reading a JUnit XML report: the fraction of test cases that passed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import attrs

#: reports are written by the project's own tools; a bigger file is not worth parsing
MAX_REPORT_BYTES = 32 * 1024 * 1024


@attrs.frozen(kw_only=True)
class JUnitCounts:
    passed: int
    failed: int  #: failures and errors
    skipped: int

    @property
    def score(self) -> float | None:
        """Passed over run (skipped cases are neither); None when nothing ran."""
        ran = self.passed + self.failed
        return self.passed / ran if ran else None


def read_junit(path: Path) -> JUnitCounts | None:
    """The counts in the report at ``path``, or None if it is missing, huge or garbage."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            failed += 1
        elif "skipped" in outcomes:
            skipped += 1
        else:
            passed += 1
    if passed + failed + skipped == 0:
        return None
    return JUnitCounts(passed=passed, failed=failed, skipped=skipped)
