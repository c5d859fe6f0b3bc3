"""``/metrics`` in Prometheus's text format; every name starts with ``directorate_``.

The directives, steps, tasks, evaluations, approvals, cost, breaker trips and lease
takeovers are the database's (one round of small aggregate queries per scrape, so
every engine's work is counted, not only this process's); the writer's flush latency,
batch sizes and reconnects are this process's own writer's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directorate.persistence.database import Database

COUNTS = {
    "directives": "SELECT status, count(*) FROM directives GROUP BY status",
    "steps": "SELECT s.status, count(*) FROM chain_steps s"
    " JOIN directive_chains c ON c.id = s.chain_id WHERE c.status = 'active' GROUP BY s.status",
    "tasks_running": "SELECT 'all', count(*) FROM tasks WHERE status = 'running'",
    "evaluations": "SELECT confidence_level, count(*) FROM directive_evaluations GROUP BY 1",
    "approvals_pending": "SELECT 'all', count(*) FROM directive_approvals WHERE status = 'pending'",
    "cost": "SELECT 'all', coalesce(sum(total_cost_usd), 0) FROM directives",
    "breaker_trips": "SELECT coalesce(data->>'limit', 'unknown'), count(*) FROM directive_events"
    " WHERE event_type = 'circuit_breaker_tripped' GROUP BY 1",
    "takeovers": "SELECT 'all', count(*) FROM directive_events WHERE event_type = 'taken_over'",
}
"""Each query gives (label, value) rows."""


class EngineCollector:
    """Reads the figures when scraped (prometheus_client's custom-collector protocol)."""

    def __init__(self, db: Database, writer_stats: Callable[[], dict[str, Any]] | None) -> None:
        self._db = db
        self._writer_stats = writer_stats

    def _counts(self) -> dict[str, list[tuple[str, float]]]:
        with self._db.pool.connection() as conn:
            return {
                name: [(str(label), float(value)) for label, value in conn.execute(sql)]
                for name, sql in COUNTS.items()
            }

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()

        def labelled(kind: type[Any], name: str, doc: str, label: str, key: str) -> Metric:
            family: Metric = kind(name, doc, labels=[label])
            for value_label, value in counts[key]:
                family.add_metric([value_label], value)  # type: ignore[attr-defined]
            return family

        def single(kind: type[Any], name: str, doc: str, key: str) -> Metric:
            family: Metric = kind(name, doc, value=sum(value for _, value in counts[key]))
            return family

        yield labelled(
            GaugeMetricFamily,
            "directorate_directives",
            "Directives by status.",
            "status",
            "directives",
        )
        yield labelled(
            GaugeMetricFamily,
            "directorate_steps",
            "Steps of current chains by status.",
            "status",
            "steps",
        )
        yield single(
            GaugeMetricFamily,
            "directorate_tasks_running",
            "Agent tasks running now.",
            "tasks_running",
        )
        yield labelled(
            CounterMetricFamily,
            "directorate_evaluations",
            "Evaluations by confidence level.",
            "confidence",
            "evaluations",
        )
        yield single(
            GaugeMetricFamily,
            "directorate_approvals_pending",
            "Approvals waiting for a human.",
            "approvals_pending",
        )
        yield single(
            CounterMetricFamily,
            "directorate_cost_usd",
            "What every directive's agents have cost, in dollars.",
            "cost",
        )
        yield labelled(
            CounterMetricFamily,
            "directorate_breaker_trips",
            "Circuit breaker trips by limit.",
            "limit",
            "breaker_trips",
        )
        yield single(
            CounterMetricFamily,
            "directorate_lease_takeovers",
            "Directives taken over from an engine that stopped beating.",
            "takeovers",
        )
        if self._writer_stats is not None:
            yield from writer_metrics(self._writer_stats())


def writer_metrics(stats: dict[str, Any]) -> Iterator[Metric]:
    for name, key, doc in (
        ("directorate_writer_flush_seconds", "flush_seconds", "How long a writer flush took."),
        ("directorate_writer_batch_size", "batch_sizes", "Writes committed by one flush."),
    ):
        histogram = stats[key]
        family = HistogramMetricFamily(name, doc)
        buckets = [(_bound(bound), float(count)) for bound, count in histogram["buckets"]]
        family.add_metric([], buckets, sum_value=histogram["sum"])
        yield family
    yield CounterMetricFamily(
        "directorate_db_reconnects",
        "Times the writer reconnected to the database.",
        value=stats["reconnects"],
    )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def registry_for(
    db: Database, writer_stats: Callable[[], dict[str, Any]] | None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(db, writer_stats))
    return registry


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
