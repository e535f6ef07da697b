"""Labels: the string -> string pairs a post carries (`team=db`, `service=api`) and an incident
keeps the union of. Matchers (shared/matchers.py) route and silence by them.

Two ways in: what a person or a client sends is *checked* (a bad label is a 422 naming it);
what another tool sends us (Alertmanager, PagerDuty, a polled feed) is *cleaned* — clipped to
the same bounds — because refusing a page over a too-long label value would be worse than
clipping it.
"""

import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

MAX_LABELS = 64
MAX_NAME = 128
MAX_VALUE = 1_024
# Prometheus label names, plus `. : / -` which other tools use (`app.kubernetes.io/name`).
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/\-]*$")


def check_name(name: str) -> str | None:
    """Why a label name is refused, or None."""
    if not name or len(name) > MAX_NAME:
        return f"label name {name[:40]!r}: 1 to {MAX_NAME} characters"
    if not NAME.match(name):
        return f"label name {name!r}: a letter or _ first, then letters, digits, or _ . : / -"
    return None


def check(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels as a client declared them, or a ValueError naming the first bad one."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels; at most {MAX_LABELS}")
    for name, value in labels.items():
        if (why := check_name(name)) is not None:
            raise ValueError(why)
        if len(value) > MAX_VALUE:
            raise ValueError(f"label {name!r}: value longer than {MAX_VALUE} characters")
    return dict(labels)


def clean(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Labels from another tool: bad names dropped, values clipped, empty values skipped
    (an empty label is an absent one, as in Prometheus), at most MAX_LABELS kept."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out: dict[str, str] = {}
    for name, value in items:
        if len(out) >= MAX_LABELS:
            break
        if not isinstance(name, str) or check_name(name) is not None or value is None:
            continue
        text = str(value).strip()[:MAX_VALUE]
        if text:
            out[name] = text
    return out


def union(kept: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """An incident's labels after one more post: the first value of a label stays (routing and
    silences must not flip on a later post), new names are added up to MAX_LABELS."""
    out = dict(kept)
    for name, value in new.items():
        if name not in out and len(out) < MAX_LABELS:
            out[name] = value
    return out


def _coerce(value: Any) -> Any:
    """Plain-XADD producers send every field as a string: accept a JSON object or `a=1,b=2`."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON object: {e.msg}") from None
    pairs: dict[str, str] = {}
    for part in text.split(","):
        name, eq, val = part.partition("=")
        if not eq:
            raise ValueError(f"{part.strip()!r}: write labels as name=value, comma-separated")
        pairs[name.strip()] = val.strip()
    return pairs


# A post's or an incident's labels, as a field of a model.
Labels = Annotated[dict[str, str], BeforeValidator(_coerce), AfterValidator(check)]


def parse_pairs(items: Iterable[str]) -> dict[str, str]:
    """`["team=db", "env=prod"]` (the CLI's --labels) -> a checked dict."""
    pairs: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            if not eq:
                raise ValueError(f"{part!r}: write labels as name=value")
            pairs[name.strip()] = value.strip()
    return check(pairs)
