"""Stream entries <-> models.

redalert writes every entry as one field, ``data``, holding the model's JSON. Readers also accept
what other producers write to ``posts``: flat fields (``XADD … text "…" source "…"``), a JSON
object in ``data``/``json``/``payload``, or a FastStream-published message.
"""

import base64
import json
from typing import TypeVar

from faststream.redis.parser.binary import BinaryMessageFormatV1
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

Fields = dict[bytes, bytes]

DATA = b"data"
_FASTSTREAM_DATA = b"__data__"
_JSON_FIELDS = (DATA, b"json", b"payload")


class DecodeError(ValueError):
    """An entry that can never be processed, however often it is retried."""


def encode(model: BaseModel) -> dict[str, str]:
    return {"data": model.model_dump_json(exclude_none=True)}


def decode(fields: Fields, model: type[M]) -> M:
    try:
        raw = _payload(fields)
        if isinstance(raw, bytes):
            return model.model_validate_json(raw)
        return model.model_validate(raw)
    except ValidationError as e:
        raise DecodeError(describe_validation_error(e)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DecodeError(f"not valid UTF-8 JSON: {e}") from None


def _payload(fields: Fields) -> bytes | dict[str, str]:
    if _FASTSTREAM_DATA in fields:
        body, _headers = BinaryMessageFormatV1.parse(fields[_FASTSTREAM_DATA])
        return body
    for name in _JSON_FIELDS:
        if name in fields and fields[name].lstrip().startswith(b"{"):
            return fields[name]
    if not fields:
        raise DecodeError("empty entry")
    # Flat fields from a plain XADD: every value is a string.
    return {k.decode(): v.decode() for k, v in fields.items()}


def describe_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def printable_fields(fields: Fields) -> dict[str, str]:
    """The entry as strings, for a dead letter: UTF-8 where possible, base64 otherwise."""
    out: dict[str, str] = {}
    for k, v in fields.items():
        key = k.decode(errors="replace")
        try:
            out[key] = v.decode()
        except UnicodeDecodeError:
            out[key] = "base64:" + base64.b64encode(v).decode()
    return out


def restore_fields(fields: dict[str, str]) -> dict[str, bytes]:
    """The inverse of printable_fields, for replaying a dead letter."""
    return {
        k: base64.b64decode(v[7:]) if v.startswith("base64:") else v.encode()
        for k, v in fields.items()
    }
