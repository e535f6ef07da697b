"""Generic JSON webhooks: where, in whatever a tool sends, the text, id, thread, severity and
labels of a post are — a small mapping of JSONPath-like field paths, declared per source.

A path starts at `$` (the event) and goes down by `.name`, `['any name']` or `[index]`;
`items` may also use `[*]` (every element) to say where the list of events is. A path that
finds nothing gives nothing: only `text` is required to find something.

Pure: `JsonMapping.posts(body, source)` turns a decoded body into Posts, or raises
`MappingError` naming the event and the field.
"""

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.ingest.sources.text import clip, tidy
from shared.labels import check_name, clean
from shared.models import Post, SourceHint

MAX_EVENTS = 1_000
_STEP = re.compile(
    r"\.(?P<name>[A-Za-z_][\w\-]*)|\[(?P<index>\d+)\]|\['(?P<sq>[^']*)'\]"
    r"|\[\"(?P<dq>[^\"]*)\"\]|\[(?P<all>\*)\]"
)
ALL = object()  # the `[*]` step
Step = str | int | object


class MappingError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def parse_path(path: str, *, wildcard: bool = False) -> tuple[Step, ...]:
    """`$.alert.labels['service name'][0]` -> ("alert", "labels", "service name", 0)."""
    text = path.strip()
    if not text.startswith("$"):
        text = "$." + text  # `alert.title` is read as `$.alert.title`
    steps: list[Step] = []
    pos = 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(f"{path!r}: cannot read a path step at {text[pos:][:40]!r}")
        if m["all"]:
            if not wildcard:
                raise ValueError(f"{path!r}: [*] is only for `items`")
            steps.append(ALL)
        elif m["index"] is not None:
            steps.append(int(m["index"]))
        else:
            steps.append(m["name"] or m["sq"] or m["dq"] or "")
        pos = m.end()
    return tuple(steps)


def find(data: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value the path reaches (several only through `[*]`)."""
    found = [data]
    for step in steps:
        nxt: list[Any] = []
        for value in found:
            if step is ALL:
                nxt += (
                    value
                    if isinstance(value, list)
                    else list(value.values())
                    if isinstance(value, dict)
                    else []
                )
            elif isinstance(step, int):
                if isinstance(value, list) and step < len(value):
                    nxt.append(value[step])
            elif isinstance(value, dict) and step in value:
                nxt.append(value[step])
        found = nxt
    return found


def scalar(data: Any, path: str | None) -> str | None:
    """The first scalar at a path, as text; None when there is none."""
    if path is None:
        return None
    for value in find(data, parse_path(path)):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float) and str(value).strip():
            return str(value).strip()
    return None


class JsonMapping(BaseModel):
    """Where a post's fields are in an event. Paths as in the module docstring."""

    model_config = ConfigDict(extra="forbid")

    items: str | None = Field(
        default=None, description="Where the events are (`$.alerts[*]`); default: the body "
        "is one event, or a list of them."
    )  # fmt: skip
    text: list[str] = Field(min_length=1, max_length=5, description="Joined, empty ones left out.")
    id: str | None = Field(default=None, description="Default: a digest of the event.")
    thread: str | None = None
    severity: str | None = Field(default=None, description="Mapped by the rules' hints.json.")
    status: str | None = Field(default=None, description="`resolved`… (hints.json)")
    labels: dict[str, str] = Field(default_factory=dict, max_length=50)
    url: str | None = None
    author: str | None = None
    published_at: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("items")
    @classmethod
    def _items_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path, wildcard=True)
        return path

    @field_validator("text")
    @classmethod
    def _text_paths(cls, paths: list[str]) -> list[str]:
        for p in paths:
            parse_path(p)
        return paths

    @field_validator("id", "thread", "severity", "status", "url", "author", "published_at")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path)
        return path

    @field_validator("labels")
    @classmethod
    def _label_paths(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, path in labels.items():
            if (why := check_name(name)) is not None:
                raise ValueError(why)
            parse_path(path)
        return labels

    # --- reading events --------------------------------------------------------------------

    def events(self, body: Any) -> list[Any]:
        if self.items is not None:
            events = find(body, parse_path(self.items, wildcard=True))
        else:
            events = body if isinstance(body, list) else [body]
        if len(events) > MAX_EVENTS:
            raise MappingError("body", f"{len(events)} events; at most {MAX_EVENTS} a request")
        return events

    def posts(self, body: Any, source: str) -> list[Post]:
        return [self.post(event, source, f"event {n}") for n, event in enumerate(self.events(body))]

    def post(self, event: Any, source: str, where: str) -> Post:
        parts = [scalar(event, p) for p in self.text]
        text = "\n\n".join(tidy(p) for p in parts if p)
        if not text:
            raise MappingError(where, f"mapping.text ({', '.join(self.text)}) found no text")
        said = {
            k: v.lower()[:200]
            for k in ("severity", "status")
            if (v := scalar(event, getattr(self, k)))
        }
        labels = clean((name, scalar(event, path)) for name, path in self.labels.items())
        post_id = scalar(event, self.id) or _digest(event)
        try:
            return Post(
                id=post_id[:200],
                source=source,
                text=clip(text),
                thread_id=(scalar(event, self.thread) or "")[:200] or None,
                url=scalar(event, self.url),
                author=(scalar(event, self.author) or "")[:200] or None,
                published_at=scalar(event, self.published_at),
                hint=SourceHint(scheme="json", values=said) if said else None,
                labels=labels,
            )
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise MappingError(where, f"{field}: {err['msg']}") from None


def _digest(event: Any) -> str:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
