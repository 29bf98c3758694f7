"""Prometheus metrics (`GET /metrics`, prometheus_client's text format).

Two kinds:
- Process metrics, counted where they happen: HTTP requests by route (the URL rule, not the raw path) and
  status, their latency, open log streams. Under gunicorn every worker process counts its own; with
  PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py does it) prometheus_client keeps them in files there and
  the scrape sums every process.
- Factory metrics, read at scrape time from the database and Redis (the source of truth, whichever
  process or host did the work): builds by status and failure class, build and stage duration histograms,
  queue depths, the result cache's hit ratio, webhook deliveries, workers online and lost.
"""
from __future__ import annotations

import contextlib
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from app import queues
from app.extensions import db
from app.models import Build, BuildStage
from app.models.builds import FAILURE_CLASSES, TERMINAL_STATUSES
from app.models.webhooks import WebhookDelivery

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Builds take minutes; stages seconds to many minutes; requests milliseconds.
BUILD_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
STAGE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800)

# Process metrics live in their own registry, so each scrape assembles a fresh one around them.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter("kiln_http_requests_total", "HTTP requests answered, by route (URL rule) and status",
                        ["method", "route", "status"], registry=PROCESS_REGISTRY)
HTTP_LATENCY = Histogram("kiln_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                         ["method", "route"], registry=PROCESS_REGISTRY)
LOG_STREAMS = Gauge("kiln_active_log_streams", "Live build log streams open now (SSE and WebSocket)",
                    registry=PROCESS_REGISTRY, multiprocess_mode="livesum")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


@contextlib.contextmanager
def log_stream():
    LOG_STREAMS.inc()
    try:
        yield
    finally:
        LOG_STREAMS.dec()


def _histogram(name: str, doc: str, buckets, series: dict[tuple, list[float]], labels: list[str]):
    family = HistogramMetricFamily(name, doc, labels=labels)
    for label_values, values in sorted(series.items()):
        cumulative = [(str(float(b)), sum(1 for v in values if v <= b)) for b in buckets]
        cumulative.append(("+Inf", len(values)))
        family.add_metric(list(label_values), cumulative, sum_value=sum(values))
    return family


class FactoryCollector:
    """Read at scrape time, in the scraping request's app context."""

    def __init__(self, workers_service):
        self.workers = workers_service

    def collect(self):
        yield from self._builds()
        yield from self._durations()
        depth = GaugeMetricFamily("kiln_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        for name, count in self.workers.queue_depths().items():
            depth.add_metric([name], count)
        yield depth
        listed = self.workers.list_workers()
        workers = GaugeMetricFamily("kiln_factory_workers", "Registered factory workers by status", labels=["status"])
        for status in ("online", "lost"):
            workers.add_metric([status], sum(1 for w in listed if w.status == status))
        yield workers
        # A delivery moves from pending to delivered or failed: a gauge of where they are now, not a counter.
        deliveries = GaugeMetricFamily("kiln_webhook_deliveries", "Webhook deliveries by their status now",
                                       labels=["status"])
        for status, count in db.session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)):
            deliveries.add_metric([status], count)
        yield deliveries

    def _builds(self):
        current = GaugeMetricFamily("kiln_builds", "Builds by status and failure class now",
                                    labels=["status", "failure_class"])
        # Ended builds never change state again; deleting one reads as a counter reset to Prometheus.
        finished = CounterMetricFamily("kiln_builds_finished", "Builds that ended, by status and failure class",
                                       labels=["status", "failure_class"])
        for status, failure_class, count in db.session.execute(
                select(Build.status, Build.failure_class, func.count()).group_by(Build.status, Build.failure_class)):
            cls = failure_class if failure_class in FAILURE_CLASSES else ("" if status != "failed" else "unclassified")
            current.add_metric([status, cls], count)
            if status in TERMINAL_STATUSES:
                finished.add_metric([status, cls], count)
        yield current
        yield finished
        succeeded, cached = db.session.execute(
            select(func.count(), func.coalesce(func.sum(db.case((Build.cached.is_(True), 1), else_=0)), 0))
            .where(Build.status == "succeeded")).one()
        hits = CounterMetricFamily("kiln_build_cache_hits", "Succeeded builds served from the result cache")
        hits.add_metric([], int(cached))
        yield hits
        ratio = GaugeMetricFamily("kiln_build_cache_hit_ratio",
                                  "Share of succeeded builds served from the result cache (0 before any)")
        ratio.add_metric([], (int(cached) / succeeded) if succeeded else 0.0)
        yield ratio

    def _durations(self):
        by_status: dict[tuple, list[float]] = {}
        for status, started, ended in db.session.execute(
                select(Build.status, Build.started_at, Build.finished_at)
                .where(Build.status.in_(TERMINAL_STATUSES), Build.started_at.is_not(None),
                       Build.finished_at.is_not(None), Build.cached.is_(False))):
            by_status.setdefault((status,), []).append(max((ended - started).total_seconds(), 0.0))
        yield _histogram("kiln_build_duration_seconds", "Wall time of ended builds, start to end",
                         BUILD_BUCKETS, by_status, ["status"])
        by_stage: dict[tuple, list[float]] = {}
        for name, duration in db.session.execute(
                select(BuildStage.name, BuildStage.duration).where(BuildStage.duration.is_not(None))):
            by_stage.setdefault((name,), []).append(float(duration))
        yield _histogram("kiln_build_stage_duration_seconds", "Duration of build stages that ran",
                         STAGE_BUCKETS, by_stage, ["stage"])


class _ProcessMetrics:
    def collect(self):
        return PROCESS_REGISTRY.collect()


def exposition() -> bytes:
    """The whole text for one scrape."""
    from app.services.ops import workers

    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(FactoryCollector(workers))
    return generate_latest(registry)

