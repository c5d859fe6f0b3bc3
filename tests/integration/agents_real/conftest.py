"""The real claude and codex CLIs against the loopback model server (tests/loopback):
no directorate involved, only the protocol and the tools' own outputs."""

from loopback.fixtures import *  # noqa: F403 - the fixtures are the point
