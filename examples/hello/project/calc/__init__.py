"""A tiny calculator with two bugs, for directorate's demo."""

from .add import add
from .multiply import multiply

__all__ = ["add", "multiply"]
