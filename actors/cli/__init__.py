"""The ``directorate`` command line: a client of the engine's public API.

``app`` parses arguments and holds the small commands, ``run`` follows one
directive in the foreground, ``daemon`` runs an engine until told to stop, and
``views`` turns records into lines and JSON.
"""

from .app import main

__all__ = ["main"]
