"""Fixtures for the HTTP front end: a real engine on a fresh database, and the app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_helpers import TOKEN, settings_for

from directorate.actors import Engine
from directorate.actors.web import create_app


@pytest.fixture
def client_for() -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(engine: Engine, *, bearer: bool = True) -> TestClient:
        client = TestClient(create_app(settings_for(engine)), follow_redirects=False)
        if bearer:
            client.headers["Authorization"] = f"Bearer {TOKEN}"
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
