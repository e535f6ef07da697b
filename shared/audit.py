"""The audit trail: every change made through the API — who, when, what, from where.

Entries are appended to one capped stream. The actor is the token's name (in open mode, what
the client claimed, marked unauthenticated); `changes` never holds a secret in clear: callers pass
what they would show in an answer (masked URLs, `****` secrets), and `masked()` is applied to it
once more as a belt to those braces.
"""

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import new_id, utcnow
from shared.secrets import MASK, mask_url

# Field names whose values are never recorded as given.
_SECRET_FIELDS = {"secret", "token", "password", "api_key", "apikey", "sig", "signature"}


class AuditEntry(BaseModel):
    id: str = Field(default_factory=new_id)
    at: datetime = Field(default_factory=utcnow)
    actor: str
    role: str | None = None
    authenticated: bool = True
    claimed: str | None = None  # a name the client gave, kept beside the token's
    action: str  # e.g. "POST /v1/subscriptions", or a route's own name like "token.add"
    target: str | None = None  # the path's object: a subscription id, an incident id…
    changes: dict[str, Any] | None = None
    status: int
    source_ip: str | None = None


def masked(value: Any) -> Any:
    """`value` with secret fields replaced and URLs' credentials masked (recursively)."""
    if isinstance(value, dict):
        return {
            k: (MASK if str(k).lower() in _SECRET_FIELDS and v is not None else masked(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


class AuditTrail:
    def __init__(self, redis: Redis, keys: Keys, keep: int = 100_000) -> None:
        self.redis = redis
        self.keys = keys
        self.keep = keep

    async def record(self, entry: AuditEntry) -> None:
        entry = entry.model_copy(update={"changes": masked(entry.changes)})
        await self.redis.xadd(
            self.keys.audit, {"data": entry.model_dump_json()}, maxlen=self.keep, approximate=True
        )

    async def list(
        self,
        *,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        scan: int = 10_000,
    ) -> list[AuditEntry]:
        """Newest first, filtered; looks at `scan` entries at most (the newest in the window)."""
        high = f"{_ms(until)}" if until else "+"
        low = f"{_ms(since)}" if since else "-"
        found: list[AuditEntry] = []
        seen = 0
        while seen < scan and len(found) < limit:
            batch = await self.redis.xrevrange(self.keys.audit, high, low, count=500)
            if not batch:
                break
            for _, fields in batch:
                seen += 1
                entry = AuditEntry.model_validate_json(fields[b"data"])
                if _keeps(entry, actor, action, target):
                    found.append(entry)
                    if len(found) >= limit:
                        break
            high = f"({batch[-1][0].decode()}"
        return found


def _keeps(entry: AuditEntry, actor: str | None, action: str | None, target: str | None) -> bool:
    if actor is not None and entry.actor != actor:
        return False
    if action is not None and action.lower() not in entry.action.lower():
        return False
    return target is None or entry.target == target


def _ms(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)
