"""Routes: subscriptions and escalation policies, considered in order of `priority` (highest
first). A route that applies to an incident and says `continue: false` stops every route after
it — Alertmanager's routing tree, flattened — so "DB red alerts → the DB on-call only" is one
policy with `matchers: [team="db"]`, `min_severity: red_alert`, `priority: 10`,
`continue: false`. Pure.

For routing, a route *applies* when its filters match the incident's labels (and topics,
sources) and the incident has reached its `min_severity` (its peak: a route that took an
incident keeps it until it ends, so its all-clear is told where its alarm was).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.escalation import Policy
from shared.matchers import compiled
from shared.models import Incident, Subscription
from shared.severity import Severity

Kind = Literal["subscription", "policy"]


@dataclass(frozen=True)
class Route:
    kind: Kind
    id: str
    name: str
    priority: int
    continue_: bool
    min_severity: Severity
    matchers: tuple[str, ...]
    topics: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def why_not(self, incident: Incident) -> str | None:
        """None when the route applies to the incident; else why not."""
        if self.topics and not set(self.topics) & {t.lower() for t in incident.topics}:
            return "not one of its topics"
        if self.sources and not set(self.sources) & {s.lower() for s in incident.sources}:
            return "not one of its sources"
        miss = compiled(self.matchers).first_mismatch(incident.labels)
        if miss is not None:
            return f"labels: {miss} does not match"
        if incident.peak_severity < self.min_severity:
            return f"{incident.peak_severity.label} is below its {self.min_severity.label}"
        return None


def routes(subs: Sequence[Subscription], policies: Sequence[Policy]) -> list[Route]:
    """Every route, in the order they are considered: priority, then policies first, then name."""
    out = [
        Route(
            "subscription",
            s.id,
            s.name,
            s.priority,
            s.continue_,
            s.min_severity,
            tuple(s.matchers),
            tuple(s.topics),
            tuple(s.sources),
        )
        for s in subs
    ]
    out += [
        Route("policy", p.name, p.name, p.priority, p.continue_, p.min_severity, tuple(p.matchers))
        for p in policies
    ]
    return sorted(out, key=lambda r: (-r.priority, r.kind != "policy", r.name, r.id))


@dataclass(frozen=True)
class Decision:
    route: Route
    taken: bool
    why: str  # why it takes the incident, or why not


def decide(all_routes: Sequence[Route], incident: Incident) -> list[Decision]:
    """Each route's decision for the incident, in order, with the reason."""
    out: list[Decision] = []
    stopper: Route | None = None
    for r in all_routes:
        if stopper is not None:
            out.append(Decision(r, False, f"stopped by {stopper.label} (continue: false)"))
            continue
        why = r.why_not(incident)
        if why is not None:
            out.append(Decision(r, False, why))
            continue
        what = "matches" + (
            " (continue: false: routes after it are skipped)" if not r.continue_ else ""
        )
        out.append(Decision(r, True, what))
        if not r.continue_:
            stopper = r
    return out


def skipped(all_routes: Sequence[Route], incident: Incident) -> dict[tuple[Kind, str], str]:
    """The routes a `continue: false` above them skips for this incident, and why."""
    if all(r.continue_ for r in all_routes):
        return {}
    return {
        (d.route.kind, d.route.id): d.why
        for d in decide(all_routes, incident)
        if d.why.startswith("stopped by")
    }
