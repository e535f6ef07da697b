"""Models built from values classify made itself: no validation, no per-field inspection.

`model_construct` skips validation but still walks every field for defaults and aliases; on the
hot path (a classification, its hits and the model's opinion, per post) that walk cost a tenth
of the rules engine. These values come from a validated rules file, a validated post and the
engine's own arithmetic, so they are set as they are.
"""

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def trusted(model: type[M], fields: dict[str, Any], given: Iterable[str]) -> M:
    """`model` with `fields` (every field, in the model's order); `given` are those set
    (`model_fields_set`), as `model_construct` would have recorded them."""
    m = model.__new__(model)
    object.__setattr__(m, "__dict__", fields)
    object.__setattr__(m, "__pydantic_fields_set__", set(given))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m
