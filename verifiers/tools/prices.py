"""Dollars for tools that report tokens but no cost (Codex, Gemini, Aider's tokens).

Prices are US dollars per million tokens, as the model's vendor lists them for its
API (checked 2026-12; a subscription's real cost differs: use ``max_total_tokens``
there). A model is priced by the longest key of the table its name starts with, so
``gpt-5.5-codex`` takes ``gpt-5.5`` if present, else ``gpt-5``. A model no key
matches has no known price: its cost is unknown, said in a note, never guessed.

A directive overrides or adds models in ``[agent.prices]`` (and
``[verifiers.llm.prices]`` for the judge)::

    [agent.prices]
    "gpt-5.5" = { input = 1.25, cached_input = 0.125, output = 10.0 }
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Price:
    """Dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    """Input read from the prompt cache; None: billed as input."""

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """``input_tokens`` counts cached ones too (OpenAI's and Google's convention)."""
        cached = min(max(cached_tokens, 0), input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (input_tokens - cached) * self.input
            + cached * cached_rate
            + output_tokens * self.output
        )
        return dollars / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI (Codex; Aider, which prices these itself): https://openai.com/api/pricing
    "gpt-5": Price(input=1.25, cached_input=0.125, output=10.0),
    "gpt-5-mini": Price(input=0.25, cached_input=0.025, output=2.0),
    "gpt-5-nano": Price(input=0.05, cached_input=0.005, output=0.40),
    "gpt-4.1": Price(input=2.0, cached_input=0.5, output=8.0),
    "gpt-4.1-mini": Price(input=0.4, cached_input=0.1, output=1.6),
    "gpt-4o": Price(input=2.5, cached_input=1.25, output=10.0),
    "o3": Price(input=2.0, cached_input=0.5, output=8.0),
    "o4-mini": Price(input=1.1, cached_input=0.275, output=4.4),
    # Google (Gemini CLI, which reports tokens only): https://ai.google.dev/gemini-api/docs/pricing,
    # paid tier, prompts up to 200k tokens (2.5 Pro costs more above); thinking is output.
    "gemini-2.5-pro": Price(input=1.25, cached_input=0.31, output=10.0),
    "gemini-2.5-flash": Price(input=0.30, cached_input=0.075, output=2.5),
    "gemini-2.5-flash-lite": Price(input=0.10, cached_input=0.025, output=0.40),
    # Anthropic (Claude Code reports its own cost; for Aider with a Claude model)
    "claude-opus-4": Price(input=15.0, cached_input=1.5, output=75.0),
    "claude-sonnet-4": Price(input=3.0, cached_input=0.3, output=15.0),
    "claude-haiku-4": Price(input=1.0, cached_input=0.1, output=5.0),
}

MAX_PRICE = 10_000.0
"""Dollars per million tokens above which a configured price is a typo."""


@attrs.frozen
class PriceTable:
    prices: Mapping[str, Price] = attrs.field(factory=lambda: dict(DEFAULT_PRICES))

    def price_for(self, model: str | None) -> Price | None:
        if not model:
            return None
        name = model.split("/")[-1].lower()  # "openai/gpt-5" is gpt-5
        best = max(
            (key for key in self.prices if name.startswith(key.lower())), key=len, default=None
        )
        return None if best is None else self.prices[best]

    def cost(
        self, model: str | None, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> tuple[float | None, str | None]:
        """(dollars, why unknown)."""
        price = self.price_for(model)
        if price is None:
            shown = repr(model) if model else "an unnamed model"
            return None, f"no price for {shown} in the price table ([agent.prices])"
        return price.cost(input_tokens, output_tokens, cached_tokens), None

    def with_overrides(self, overrides: Mapping[str, Price]) -> PriceTable:
        return PriceTable({**self.prices, **overrides})


DEFAULT_TABLE = PriceTable()


def parse_prices(value: Any, key: str) -> dict[str, Price]:
    """``[agent.prices]`` as Prices; raises ValueError with a one-line reason."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: must be a table of models")
    prices: dict[str, Price] = {}
    for model, entry in value.items():
        where = f"{key}.{model}"
        if not isinstance(model, str) or not model.strip() or "\x00" in model:
            raise ValueError(f"{key}: a model name must be non-empty text")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: must be a table with input and output")
        unknown = set(entry) - {"input", "output", "cached_input"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        figures: dict[str, float] = {}
        for name in ("input", "output", "cached_input"):
            if name not in entry:
                if name == "cached_input":
                    continue
                raise ValueError(f"{where}: {name} is missing (dollars per million tokens)")
            figure = entry[name]
            if isinstance(figure, bool) or not isinstance(figure, int | float):
                raise ValueError(f"{where}.{name}: must be a number")
            if not math.isfinite(figure) or not 0 <= figure <= MAX_PRICE:
                raise ValueError(f"{where}.{name}: must be between 0 and {MAX_PRICE:g}")
            figures[name] = float(figure)
        prices[model] = Price(**figures)
    return prices
