"""The HTTP front end: the JSON API, the dashboard, server-sent events and metrics.

A client of the engine like the command line: it reads through the read queries
and changes directives only through the durable command path, so it works beside
a daemon (``directorate serve``) as well as inside one (``daemon --http``).
"""

from .app import WebSettings, create_app
from .server import HttpServer

__all__ = ["HttpServer", "WebSettings", "create_app"]
