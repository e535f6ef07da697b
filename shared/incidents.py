"""Reading incidents (classify is the only writer; see services/classify/owner.py)."""

import json
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from shared.keys import ARCHIVE, Keys
from shared.models import ArchivedIncident, Incident, IncidentEvent

# A page of the archive, and the cursor of the next one.
ArchivePage = tuple[list[ArchivedIncident], str | None]

# Kept for classify's own use (correlation), never shown: not part of any API answer.
INTERNAL_FIELDS = frozenset({"terms"})


def public(incident: Incident) -> dict[str, Any]:
    """An incident as API answers show it."""
    return incident.model_dump(mode="json", exclude=set(INTERNAL_FIELDS))


class IncidentReader:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def list(self, *, limit: int = 50, offset: int = 0) -> list[Incident]:
        """Newest first."""
        ids = await self.redis.zrevrange(self.keys.incidents, offset, offset + limit - 1)
        if not ids:
            return []
        docs = await self.redis.mget([self.keys.incident(i.decode()) for i in ids])
        return [Incident.model_validate_json(d) for d in docs if d is not None]

    async def archived(self, *, limit: int = 50, before: str | None = None) -> ArchivePage:
        """Incidents past their retention, last archived first; and the cursor of the next page
        (pass it as `before`), None at the end."""
        end = f"({before}" if before else "+"
        rows = await self.redis.xrevrange(self.keys.stream(ARCHIVE), end, "-", count=limit)
        out = [ArchivedIncident.model_validate_json(f[b"data"]) for _, f in rows]
        cursor = rows[-1][0].decode() if len(rows) == limit else None
        return out, cursor

    async def get(self, incident_id: str) -> Incident | None:
        doc = await self.redis.get(self.keys.incident(incident_id))
        return Incident.model_validate_json(doc) if doc else None

    async def detail(self, incident_id: str) -> dict[str, Any] | None:
        """The incident with its posts, its timeline and who was told what."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(k.incident(incident_id))
            pipe.lrange(k.incident_posts(incident_id), 0, -1)
            pipe.lrange(k.incident_timeline(incident_id), 0, -1)
            pipe.lrange(k.incident_deliveries(incident_id), 0, -1)
            pipe.lrange(k.escalation_log(incident_id), 0, -1)
            doc, posts, timeline, deliveries, escalation = await pipe.execute()
        if doc is None:
            return None
        return {
            "incident": public(Incident.model_validate_json(doc)),
            "posts": [json.loads(p) for p in posts],
            "timeline": _merged(
                [_timeline_entry(IncidentEvent.model_validate_json(e)) for e in timeline],
                [json.loads(e) for e in escalation],
            ),
            "deliveries": [json.loads(d) for d in deliveries],
        }


def _timeline_entry(e: IncidentEvent) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "event_id": e.id,
        "kind": e.kind.value,
        "at": e.at.isoformat(),
        "severity": e.incident.severity.value,
        "status": e.incident.status.value,
        "previous_severity": e.previous_severity.value if e.previous_severity else None,
        "previous_status": e.previous_status.value if e.previous_status else None,
        "reason": e.reason,
    }
    if e.post is not None:
        entry["post"] = {"id": e.post.id, "source": e.post.source, "text": e.post.text}
    if e.command is not None:
        entry["command"] = e.command.model_dump(mode="json", exclude_none=True)
    return entry


def _merged(events: list[dict[str, Any]], escalation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transitions and escalation lines (pages, stops: services/notify/escalation.py) in time
    order; at the same instant a transition comes first."""
    if not escalation:
        return events
    tagged = [(e["at"], 0, n, e) for n, e in enumerate(events)]
    tagged += [(e["at"], 1, n, e) for n, e in enumerate(escalation)]
    return [e for *_, e in sorted(tagged, key=lambda t: (datetime.fromisoformat(t[0]), t[1], t[2]))]
