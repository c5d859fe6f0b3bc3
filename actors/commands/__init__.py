"""Control requests from other processes, through the ``directive_commands`` table.

``client`` stores a command and reads back its outcome (the command line and the
HTTP server use it, with no engine of their own); ``consumer`` is the engine's
side, which claims pending commands and applies them.
"""

from .client import CHANNEL, issue_command, wait_for_outcome
from .consumer import CommandConsumer, apply_command

__all__ = ["CHANNEL", "CommandConsumer", "apply_command", "issue_command", "wait_for_outcome"]
