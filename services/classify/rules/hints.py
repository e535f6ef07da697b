"""Structure beats text, text still counts: a source's own severity hint, through the rules file.

A post from a structured source (a status page update, a CAP message, a Grafana alert, mapped
JSON) carries its source's own words (`Post.hint`). The table for its scheme in the rules file
(`hints:`; DEFAULT_HINTS for a scheme it leaves out) maps them to a severity or an effect, first
matching row wins. That verdict outranks the text's cue words — the source said it, in a field
made for it — but the text is still read, and a text that disagrees ("evacuate now" under a
"Minor" hint) is recorded in `Classification.hint.disagreement` and shown, not dropped.

Pure: no I/O.
"""

from collections.abc import Mapping, Sequence

from services.classify.rules.schema import DEFAULT_HINTS, HintRow
from shared.models import Classification, HintVerdict, SourceHint
from shared.severity import Severity

HintTables = Mapping[str, Sequence[HintRow]]


def tables(configured: Mapping[str, Sequence[HintRow]]) -> dict[str, list[HintRow]]:
    """The tables in force: the rules file's, and the defaults for schemes it leaves out."""
    return {k: list(v) for k, v in {**DEFAULT_HINTS, **configured}.items()}


def match(rows: Sequence[HintRow], values: Mapping[str, str]) -> int | None:
    """The index of the first row whose every `when` field has one of its values."""
    said = {k: v.strip().lower() for k, v in values.items()}
    for i, row in enumerate(rows):
        if all(said.get(f) in {v.lower() for v in vs} for f, vs in row.when.items()):
            return i
    return None


def says(hint: SourceHint) -> str:
    """`status=monitoring impact=major`, as the explanation quotes it."""
    return " ".join(f"{k}={v}" for k, v in hint.values.items()) or "nothing"


def with_hint(c: Classification, hint: SourceHint, hint_tables: HintTables) -> Classification:
    """The text's classification `c`, decided by the source's hint where a row maps it."""
    rows = hint_tables.get(hint.scheme, ())
    i = match(rows, hint.values)
    text_said = c.severity, c.all_clear
    if i is None:  # no row for it: the text decides, and the explanation says so
        verdict = HintVerdict.model_construct(
            scheme=hint.scheme,
            says=dict(hint.values),
            rule=f"hints.{hint.scheme}: no row matches",
            matched=False,
            severity=c.severity,
            text_severity=c.severity,
            text_all_clear=c.all_clear,
        )
        return c.model_copy(update={"hint": verdict})
    row = rows[i]
    severity = Severity.NO_DANGER if row.effect is not None else row.severity
    assert severity is not None  # a row gives a severity or an effect (schema)
    verdict = HintVerdict.model_construct(
        scheme=hint.scheme,
        says=dict(hint.values),
        rule=f"hints.{hint.scheme}[{i}]",
        severity=severity,
        effect=row.effect,
        text_severity=text_said[0],
        text_all_clear=text_said[1],
        disagreement=_disagreement(c, severity, row.effect),
    )
    return c.model_copy(
        update={
            "severity": severity,
            "all_clear": row.effect is not None,
            "stand_down": row.effect == "resolve",
            "hint": verdict,
        }
    )


def _disagreement(c: Classification, severity: Severity, effect: str | None) -> str | None:
    """What the text says that the hint does not: a graver reading, or an all-clear under an
    alarm. A text that says nothing (no cue fired) does not disagree."""
    text = c.severity
    if effect is not None:
        over = "resolved" if effect == "resolve" else "all clear"
        return f"the text reads {text.label}; the source says {over}" if text > severity else None
    if c.all_clear and severity > Severity.NO_DANGER:
        return f"the text reads as an all-clear; the source says {severity.label}"
    if text > severity:
        return f"the text reads {text.label}; the source says {severity.label}"
    return None
