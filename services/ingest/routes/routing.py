"""POST /v1/routes/test: who would be told about an incident with these labels, and why.

Nothing is published or sent: the answer walks every route (subscriptions and escalation
policies, by priority) as notify would for a new incident, and says for each whether it takes
the incident and why (`labels: team="db" does not match`, `stopped by policy 'db-oncall'
(continue: false)`, `held by silence …`), and whom a taken policy's first step pages right now.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.context import Context, ctx
from shared.escalation import PolicyStore, parse_target, why_not
from shared.labels import Labels
from shared.models import Incident, Subscription
from shared.people import PeopleStore
from shared.routing import decide, routes
from shared.schedules import ScheduleStore, on_call
from shared.severity import Severity
from shared.silences import SilenceStore, silencing

router = APIRouter(tags=["routing"])


class RouteTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: Labels = Field(default_factory=dict)
    severity: Severity = Severity.RED_ALERT
    topics: list[str] = Field(default_factory=list, max_length=50)
    sources: list[str] = Field(default_factory=list, max_length=50)

    def incident(self, now: datetime) -> Incident:
        return Incident(
            id="routes-test",
            title="(routes test)",
            severity=self.severity,
            peak_severity=self.severity,
            topics=[t.lower() for t in self.topics],
            sources=[s.lower() for s in self.sources],
            labels=self.labels,
            opened_at=now,
            updated_at=now,
        )


class RoutedIncident(BaseModel):
    severity: Severity
    labels: dict[str, str]
    topics: list[str]
    sources: list[str]


class RouteDecision(BaseModel):
    """One route, in the order they are tried: taken or not, and why."""

    kind: str = Field(description="subscription or policy")
    name: str
    priority: int
    continue_: bool = Field(alias="continue")
    taken: bool
    why: str
    first_step: list[str] | None = Field(
        default=None, description="a policy taken: whom its first step pages"
    )


class RoutesExplained(BaseModel):
    """Which routes an incident like this takes, and who would be told."""

    incident: RoutedIncident
    routes: list[RouteDecision]
    notified: list[str]


@router.post("/v1/routes/test", response_model=RoutesExplained, response_model_exclude_unset=True)
async def explain_routes(body: RouteTest, c: Context = Depends(ctx)) -> dict[str, Any]:
    now = datetime.now(UTC)
    incident = body.incident(now)
    subs = await c.subscriptions.all()
    policies = await PolicyStore(c.redis, c.keys).all()
    silences = await SilenceStore(c.redis, c.keys).all()
    by_sub = {s.id: s for s in subs}
    by_policy = {p.name: p for p in policies}
    answer: list[dict[str, Any]] = []
    notified: list[str] = []
    for d in decide(routes(subs, policies), incident):
        r = d.route
        entry: dict[str, Any] = {
            "kind": r.kind,
            "name": r.name,
            "priority": r.priority,
            "continue": r.continue_,
            "taken": d.taken,
            "why": d.why,
        }
        if d.taken and r.kind == "subscription":
            sub = by_sub[r.id]
            held = silencing(silences, incident, sub, now)
            if held is not None:
                entry["why"] += (
                    f"; held by silence {held.id} until {held.ends_at:%Y-%m-%d %H:%M} UTC"
                )
            else:
                notified.append(f"subscription {sub.name!r} ({_targets(sub)})")
        elif d.taken:
            policy = by_policy[r.id]
            if (why := why_not(policy, incident)) is not None:
                entry["taken"], entry["why"] = False, why
            else:
                pages = [await _pages(c, t, now) for t in policy.steps[0].notify]
                entry["first_step"] = pages
                notified += [f"{p} (policy {policy.name!r}, step 1)" for p in pages]
        answer.append(entry)
    return {
        "incident": {
            "severity": incident.severity.value,
            "labels": incident.labels,
            "topics": incident.topics,
            "sources": incident.sources,
        },
        "routes": answer,
        "notified": notified,
    }


def _targets(sub: Subscription) -> str:
    return "a webhook" if sub.webhook is not None else f"{len(sub.urls)} URL(s)"


async def _pages(c: Context, target: str, now: datetime) -> str:
    """Who a policy target pages now, said for a person."""
    kind, name = parse_target(target)
    if kind == "subscription":
        return f"subscription {name!r}"
    if kind == "schedule":
        schedule = await ScheduleStore(c.redis, c.keys).get(name)
        if schedule is None:
            return f"nobody (no schedule {name!r})"
        found = on_call(schedule, now)
        if found is None:
            return f"nobody (nobody on call on schedule {name!r})"
        return f"{found.person} (on call on schedule {name!r}, {found.via})"
    person = await PeopleStore(c.redis, c.keys).get(name)
    return name if person else f"nobody (no person {name!r})"
