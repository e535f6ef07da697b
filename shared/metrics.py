"""Metrics an on-call engineer reads: every definition here, one-line hooks in the services.

This module holds this process's own metrics (counters and latency histograms, in memory): each
replica exposes its own — ingest on `/metrics`, classify and notify on a small port
(`REDALERT_METRICS_PORT`) — and Prometheus sums them. The state of the whole deployment (stream
lag, pending, due items, open incidents, circuits, sources failing) is read from Redis at each
scrape by services/metrics.py.

Latency histograms measure from the moment ingest received a post (`Post.received_at`), so they
include queueing in the streams, across processes: clocks of the hosts must agree (NTP). Each
bucket keeps an exemplar — the post (`source:id`) or incident of its last observation — shown to
scrapers that ask for OpenMetrics (`Accept: application/openmetrics-text`): from a slow bucket
to the post that was slow.
"""

import sys
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# 1 ms to 60 s: an in-process hop takes milliseconds, a delivery to a slow target tens of seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _version() -> str:
    try:
        return version("redalert")
    except PackageNotFoundError:
        return "unknown"


build_info = Gauge(
    "redalert_build_info",
    "Always 1; the labels say which redalert this process runs.",
    ["version", "python"],
    registry=REGISTRY,
)
build_info.labels(_version(), ".".join(map(str, sys.version_info[:3]))).set(1)

# --- ingest ------------------------------------------------------------------------------------
posts = Counter(
    "redalert_posts",
    "Posts received by ingest: accepted (published), duplicate (seen before), refused (4xx).",
    ["outcome"],
    registry=REGISTRY,
)
http_requests = Counter(
    "redalert_http_requests",
    "HTTP requests answered by ingest, by route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
http_seconds = Histogram(
    "redalert_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=BUCKETS,
    registry=REGISTRY,
)

# --- classify ----------------------------------------------------------------------------------
classifications = Counter(
    "redalert_classifications",
    "Posts classified (and written), by severity and rules version.",
    ["severity", "rules_version"],
    registry=REGISTRY,
)
post_to_classified = Histogram(
    "redalert_post_classified_seconds",
    "From a post received by ingest to its classification written.",
    buckets=BUCKETS,
    registry=REGISTRY,
)
incident_transitions = Counter(
    "redalert_incident_transitions",
    "Incident events written (opened, escalated, acknowledged, resolved, ...), by kind.",
    ["kind"],
    registry=REGISTRY,
)
post_to_event = Histogram(
    "redalert_post_event_seconds",
    "From a post received by ingest to the incident event it caused.",
    buckets=BUCKETS,
    registry=REGISTRY,
)
rules_reloads = Counter(
    "redalert_rules_reloads",
    "New rules seen by a classify replica: ok (in use) or refused (kept the last good ones).",
    ["outcome"],
    registry=REGISTRY,
)

# --- notify ------------------------------------------------------------------------------------
deliveries = Counter(
    "redalert_deliveries",
    "Delivery outcomes, by target scheme (json, mailto, ...) and outcome.",
    ["scheme", "outcome"],
    registry=REGISTRY,
)
post_to_delivery = Histogram(
    "redalert_post_delivered_seconds",
    "From a post received by ingest to each delivery it caused, by scheme and outcome.",
    ["scheme", "outcome"],
    buckets=BUCKETS,
    registry=REGISTRY,
)

# --- every consumer ----------------------------------------------------------------------------
dead_letters = Counter(
    "redalert_dead_letters",
    "Entries dead-lettered by this process, by the stream they came from.",
    ["stream"],
    registry=REGISTRY,
)


# --- hooks: one line each in the services --------------------------------------------------------


# OpenMetrics caps an exemplar's label names and values at 128 characters in all.
EXEMPLAR_CHARS = 128


def _exemplar(name: str, value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    return {name: value[: EXEMPLAR_CHARS - len(name)]}


def _since(at: datetime | None) -> float | None:
    if at is None:
        return None
    return max(0.0, (datetime.now(UTC) - at).total_seconds())


def posts_received(accepted: int, duplicate: int) -> None:
    posts.labels("accepted").inc(accepted)
    posts.labels("duplicate").inc(duplicate)


def posts_refused(n: int = 1) -> None:
    posts.labels("refused").inc(n)


def classified(c: Any) -> None:
    """A `Classification` was written."""
    classifications.labels(c.severity.value, c.rules_version or "unknown").inc()
    if (took := _since(c.post.received_at)) is not None:
        post_to_classified.observe(took, _exemplar("post", c.post.key))


def incident_events(events: Iterable[Any]) -> None:
    """`IncidentEvent`s were written."""
    for e in events:
        incident_transitions.labels(e.kind.value).inc()
        if e.post is not None and (took := _since(e.post.received_at)) is not None:
            post_to_event.observe(took, _exemplar("post", e.post.key))


def rules_reloaded(ok: bool) -> None:
    rules_reloads.labels("ok" if ok else "refused").inc()


def delivered(
    url: str, outcome: str, received_at: datetime | None = None, incident_id: str | None = None
) -> None:
    """One delivery's outcome; `url` may be masked (only its scheme is kept)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "unknown"
    deliveries.labels(scheme, outcome).inc()
    if (took := _since(received_at)) is not None:
        exemplar = _exemplar("incident_id", incident_id)
        post_to_delivery.labels(scheme, outcome).observe(took, exemplar)


# --- notify's lanes (services/notify/lanes.py): read from this process's lanes at each scrape
_lanes: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _lane_depths() -> list[int]:
    return [d for lanes in list(_lanes) for d in lanes.waiting()]


lane_deliveries = Gauge(
    "redalert_notify_lane_deliveries",
    "Deliveries admitted to this notify process's target lanes and not finished (in flight, "
    "retrying or waiting for a slot).",
    registry=REGISTRY,
)
lane_deliveries.set_function(lambda: float(sum(_lane_depths())))
lane_deepest = Gauge(
    "redalert_notify_lane_deepest",
    "Deliveries in this process's busiest target lane: a slow or failing target shows here.",
    registry=REGISTRY,
)
lane_deepest.set_function(lambda: float(max(_lane_depths(), default=0)))


def watch_lanes(lanes: Any) -> None:
    """Report these lanes' depths (kept weakly: a stopped notify drops out)."""
    _lanes.add(lanes)


def dead_lettered(stream: str, n: int = 1) -> None:
    dead_letters.labels(stream).inc(n)
