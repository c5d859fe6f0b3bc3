"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; no
browser is downloaded): log in with the token link, watch the chain change colour
as its steps pass, answer an approval by clicking, see the directive complete."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for helpers in ("web", "engine"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / helpers))
from engine_helpers import GreenVerifier  # noqa: E402
from web_helpers import CallableAgent, Gate, diamond, wait_for  # noqa: E402

from directorate.actors import DirectiveStatus, Engine, EngineConfig  # noqa: E402
from directorate.actors.web import HttpServer, WebSettings, create_app  # noqa: E402
from directorate.actors.web.auth import Keys  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_TO = "DASHBOARD_SCREENSHOT"
"""Where to keep the screenshot too (the README's is made with examples/dashboard.png)."""
TOKEN = "browser-test-token-0123456789"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture
def served(dsn: str, tmp_path: Path) -> Iterator[tuple[Engine, Gate, str]]:
    gate = Gate(cost_usd=1.0)
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            log_dir=tmp_path / "logs",
            runner=CallableAgent(steps={"*": gate}).runner(),
            verifier_config={"auto_detect": False},
            verifiers=[GreenVerifier()],
        )
    )
    settings = WebSettings(db=engine.db, submit=engine.submit, keys=Keys(TOKEN))
    server = HttpServer(create_app(settings), "127.0.0.1", 0).start()
    try:
        yield engine, gate, server.url
    finally:
        for name in "abcd":
            gate.open(name)
        server.stop()
        engine.shutdown()


def node_status(page: Any, name: str) -> str | None:
    status: str | None = page.get_attribute(f'svg#dag g.step[data-name="{name}"]', "data-status")
    return status


@pytest.mark.timeout(180)
def test_watch_a_chain_pass_and_approve_from_the_dashboard(
    served: tuple[Engine, Gate, str], tmp_path: Path
) -> None:
    engine, gate, url = served
    # Each step costs $1 of $1.50: the second one trips the breaker and asks a human.
    directive_id = engine.submit(diamond("Add a --version flag", max_total_cost_usd=1.5))
    engine.start_directive(directive_id)
    began = time.monotonic()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{url}/?token={TOKEN}")
            assert page.url == f"{url}/"  # the token left the address
            page.click("text=Add a --version flag")
            page.wait_for_selector('svg#dag g.step[data-name="a"][data-status="running"]')
            assert node_status(page, "b") == "pending"
            fill = page.get_attribute('svg#dag g.step[data-name="a"] rect', "fill")

            gate.open("a")  # the page hears it over SSE and redraws the chain
            page.wait_for_selector('svg#dag g.step[data-name="a"][data-status="passed"]')
            assert page.get_attribute('svg#dag g.step[data-name="a"] rect', "fill") != fill
            gate.open("b")
            gate.open("c")
            approval = page.wait_for_selector("li.approval", timeout=30_000)
            assert approval is not None and "circuit" in approval.inner_text().lower()
            page.select_option("li.approval select[name=limit]", "max_total_cost_usd")
            page.fill("li.approval input[name=value]", "100")
            page.click("li.approval button[name=approve]")
            gate.open("d")
            page.wait_for_selector("#directive-status:text('completed')", timeout=60_000)
            for name in "abcd":
                assert node_status(page, name) == "passed"
            assert page.locator("ol.events li").count() >= 10  # the live event log
            page.screenshot(path=str(tmp_path / "dashboard.png"))
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - began:.1f} s in Chromium")
    if os.environ.get(SCREENSHOT_TO):
        shutil.copyfile(tmp_path / "dashboard.png", os.environ[SCREENSHOT_TO])
    assert engine.wait(directive_id, timeout=10) is DirectiveStatus.COMPLETED
    assert engine.db.reads.directive(directive_id).max_total_cost_usd == 100
    assert wait_for(lambda: not engine.db.reads.pending_approvals(directive_id))
