"""The AsyncAPI 3.0 document of redalert's streams, generated from the models in shared/models.py.

FastStream can generate AsyncAPI, but redalert's handlers read raw entries (they decode each one
themselves, so one bad entry cannot fail a batch): its document would have empty payloads. This
one is built from the models that write and read each stream, so it says what is really there.

Served at `GET /asyncapi.json`; a copy is kept in docs/asyncapi.json, and a test fails when the
models change without it being regenerated:

    python -m shared.asyncapi > docs/asyncapi.json
"""

import json
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import keys
from shared.models import Classification, DeadLetter, Delivery, IncidentCommand, IncidentEvent, Post

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Stream:
    name: str
    model: type[BaseModel]
    written_by: str
    read_by: str | None  # the consumer group, or None: read by people and tools, not a group
    about: str


STREAMS = (
    Stream(
        keys.POSTS,
        Post,
        "ingest (or any producer)",
        keys.GROUPS[keys.POSTS],
        "Posts to classify. Other producers may XADD here: a `data` field with a Post as JSON, "
        "or plain fields (`text`, `source`, `id`, …) — only `text` is required.",
    ),
    Stream(
        keys.COMMANDS,
        IncidentCommand,
        "ingest",
        keys.GROUPS[keys.COMMANDS],
        "Acknowledge, resolve or reopen an incident; applied by classify, the single writer of "
        "incident state.",
    ),
    Stream(
        keys.CLASSIFIED,
        Classification,
        "classify",
        None,
        "Every post's classification: audit, timelines, backtests. Capped (REDALERT_AUDIT_MAXLEN).",
    ),
    Stream(
        keys.INCIDENT_EVENTS,
        IncidentEvent,
        "classify",
        keys.GROUPS[keys.INCIDENT_EVENTS],
        "Incident transitions (opened, escalated, acknowledged, resolved, …) with the incident's "
        "snapshot and the post or command that caused them. The same transition always has the "
        "same id: consumers de-duplicate on it.",
    ),
    Stream(
        keys.DELIVERIES,
        Delivery,
        "notify",
        None,
        "One delivery attempt's outcome per subscription URL (masked). Capped.",
    ),
    Stream(
        keys.DEADLETTER,
        DeadLetter,
        "any service",
        None,
        "Entries that could not be processed, with their origin, error and attempts; "
        "`redalert deadletter list/replay`.",
    ),
)


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def document(version: str = "") -> dict[str, Any]:
    _, top = models_json_schema(
        [(s.model, "validation") for s in STREAMS], ref_template=REF, title="redalert streams"
    )
    schemas = top.get("$defs", {})
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for s in STREAMS:
        model = s.model.__name__
        messages[model] = {
            "name": model,
            "title": model,
            "contentType": "application/json",
            "summary": (s.model.__doc__ or model).strip().splitlines()[0],
            "description": "A stream entry with one field, `data`: this payload as JSON.",
            "payload": {"$ref": REF.format(model=model)},
        }
        channels[s.name] = {
            "address": "{namespace}:" + s.name,
            "title": s.name,
            "description": s.about,
            "parameters": {"namespace": {"$ref": "#/components/parameters/namespace"}},
            "messages": {model: {"$ref": f"#/components/messages/{model}"}},
        }
        operations[f"send{_title(s.name)}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{s.name}"},
            "summary": f"{s.written_by} appends (XADD)",
            "messages": [{"$ref": f"#/channels/{s.name}/messages/{model}"}],
        }
        if s.read_by is not None:
            operations[f"receive{_title(s.name)}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{s.name}"},
                "summary": f"read through the consumer group `{s.read_by}` (XREADGROUP, XACK)",
                "messages": [{"$ref": f"#/channels/{s.name}/messages/{model}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "redalert streams",
            "version": version or "1",
            "description": "The Redis streams between redalert's services, which other producers "
            "and consumers may use too. Each entry holds its payload as JSON in a `data` field.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "127.0.0.1:6379",
                "protocol": "redis",
                "description": "REDALERT_REDIS_URL (or the primary named by the sentinels)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "namespace": {
                    "description": "REDALERT_NAMESPACE: the prefix of every stream and key",
                    "default": "redalert",
                }
            },
            "messages": messages,
            "schemas": dict(sorted(schemas.items())),
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
