"""Raising the limits beside dollars from the command line: names checked before a
command is queued, the terminal's default as the engine would raise it, and what the
agents used shown against each limit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directorate.actors.cli import app as cli
from directorate.actors.cli import run as cli_run
from directorate.actors.cli import views
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import Approval, ApprovalType, Directive


def test_raise_limit_takes_every_breakers_limit() -> None:
    pairs = ["max_total_tokens=2_000_000", "max_agent_turns=400", "max_total_cost_usd=20"]
    assert cli._parse_limits(pairs) == {
        "max_total_tokens": 2_000_000,
        "max_agent_turns": 400,
        "max_total_cost_usd": 20,
    }


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [
        (
            "max_tokens=5000",
            r"no circuit breaker has 'max_tokens' \(the limits are .*max_total_tokens",
        ),
        ("max_agent_turns=many", "expected NAME=NUMBER"),
    ],
)
def test_raise_limit_refuses_an_unknown_name_or_value(pair: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        cli._parse_limits([pair])


def breaker(limit: str, figure: int, threshold: int) -> Approval:
    return Approval(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        approval_type=ApprovalType.CIRCUIT_BREAKER,
        description="Token limit exceeded",
        context={"limit": limit, "figure": figure, "threshold": threshold, "reason": None},
    )


@pytest.mark.parametrize(
    ("answers", "limits", "shown"),
    [
        pytest.param(["y", ""], {}, "(empty: 2852)", id="default"),  # ceil(1.5 x 1901)
        pytest.param(["y", "3,000,000"], {"max_total_tokens": 3e6}, "", id="raised"),
        pytest.param(["y", "lots"], {}, "the engine raises it itself", id="not-a-number"),
    ],
)
def test_the_terminal_asks_for_a_token_limit_and_shows_the_engines_default(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: list[str],
    limits: dict[str, float],
    shown: str,
) -> None:
    prompts: list[str] = []

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return answers[len(prompts) - 1]

    monkeypatch.setattr("builtins.input", answer)
    assert cli_run._prompt(breaker("max_total_tokens", 1901, 1000)) == (True, limits)
    assert shown in prompts[-1] + capsys.readouterr().out


def test_show_says_what_was_used_against_each_limit() -> None:
    values: dict[str, Any] = {"total_tokens": 5650, "max_total_tokens": 10_000}
    values |= {"total_agent_turns": 14, "total_cost_usd": 0.42, "max_total_cost_usd": 5}
    d = Directive(id=uuid.uuid4(), title="t", goal="g", **values)
    assert views.usage_line(d) == "used 5,650 of 10,000 tokens, 14 agent turns, $0.42 of $5.00"
