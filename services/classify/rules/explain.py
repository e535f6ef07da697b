"""A classification explained to a person: the severity, the scores, and every rule that fired."""

from collections.abc import Callable

from shared.models import Classification, Hit
from shared.severity import Severity

Mark = Callable[[Hit, str], str]


def brackets(hit: Hit, text: str) -> str:
    return f"[{text}]"


def highlight(text: str, hits: list[Hit], mark: Mark = brackets) -> str:
    """The text with every hit marked; hits never overlap (one match per span)."""
    out, pos = [], 0
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.start < pos:
            continue  # two rules on the same words: mark them once
        out += [text[pos : hit.start], mark(hit, text[hit.start : hit.end])]
        pos = hit.end
    out.append(text[pos:])
    return "".join(out)


def describe(hit: Hit) -> str:
    """One line: what fired, on which words, and what became of it."""
    where = f'"{hit.text}" at {hit.start}-{hit.end}'
    counts = hit.kind in ("cue", "uncertainty", "all_clear", "stand_down") and hit.weight
    weight = f", {hit.weight:g}" if counts else ""
    if hit.kind == "cue":
        label = f"{hit.severity.label if hit.severity else '?'} cue"
    elif hit.kind == "ignore":
        label = "ignored"
    else:
        label = hit.kind.replace("_", "-")
    what = f"{label} ({hit.rule}{weight})" if hit.kind != "ignore" else label
    hedged = "counts as assessing" if hit.kind == "cue" else "does not act"
    fate = {
        "counted": "",
        "negated": f" — cancelled by {hit.by}",
        "hedged": f" — hedged by {hit.by}: {hedged}",
        "historical": f" — in the past ({hit.by})",
        "ignored": "",
    }[hit.effect]
    return f"{what}: {where}{fate}"


def verdict(c: Classification) -> str:
    scores = ", ".join(
        f"{label} {c.scores.get(key, 0):g}"
        for key, label in (
            (Severity.RED_ALERT.value, "red alert"),
            (Severity.ASSESSING.value, "assessing"),
            (Severity.NO_DANGER.value, "all-clear"),
        )
    )
    flags = [f for f, on in (("all clear", c.all_clear), ("stand-down", c.stand_down)) if on]
    extra = f" — {', '.join(flags)}" if flags else ""
    preset = " (set by the source)" if c.post.severity is not None else ""
    if c.hint is not None and c.hint.matched:
        preset = " (the source's hint)"
    return f"{c.severity.label}{preset}{extra} (scores: {scores}; trust {c.trust:g})"


def hint_lines(c: Classification) -> list[str]:
    """Which won, the source's own word or the text, why, and where they disagree."""
    h = c.hint
    if h is None:
        return []
    said = " ".join(f"{k}={v}" for k, v in h.says.items()) or "nothing"
    if not h.matched:
        return [f"source hint ({h.scheme}): {said} — {h.rule}, so the text decides"]
    became = {"resolve": "resolved", "all_clear": "all clear"}.get(h.effect or "", h.severity.label)
    text = h.text_severity.label + (" (an all-clear)" if h.text_all_clear else "")
    lines = [
        f"source hint ({h.scheme}): {said} -> {became} by {h.rule}; the text alone: {text}; "
        "the hint wins (a structured source's own word outranks cue words)"
    ]
    if h.disagreement:
        lines.append(f"disagreement: {h.disagreement} — kept the source's, shown here")
    return lines


def probabilities(probs: dict[str, float]) -> str:
    return ", ".join(f"{s.label} {probs.get(s.value, 0):.2f}" for s in reversed(list(Severity)))


def decision(c: Classification) -> list[str]:
    """Which layer decided, and the model's opinion when it was asked: probabilities, the words
    that weighed most, and why it was (or was not) followed."""
    if c.post.severity is not None:
        return ["decided by: the source (it set the severity)"]
    if c.hint is not None and c.hint.matched:
        return ["decided by: the source's hint"]
    m = c.model
    if m is None:
        return ["decided by: the rules (sure, or no model in use)"]
    lines = [
        f"the rules were unsure ({m.unsure}): they said {_label(m.rules_severity)}",
        f"model {m.version}: {probabilities(m.probabilities)}",
    ]
    if m.words:
        words = ", ".join(f'"{w}" {push:+.2f}' for w, push in m.words)
        lines.append(f"weighed most for {m.severity.label}: {words}")
    p = m.probabilities.get(m.severity.value, 0)
    if m.decided:
        lines.append(f"decided by: the model ({m.severity.label} {p:.2f} >= {m.confidence:g})")
    elif m.severity is m.rules_severity:
        lines.append("decided by: the rules (the model agrees)")
    elif p >= m.confidence:
        lines.append(
            "decided by: the rules (the model may lower a severity only where danger and an "
            "all-clear both fired)"
        )
    else:
        lines.append(
            f"decided by: the rules (the model's {m.severity.label} {p:.2f} < {m.confidence:g})"
        )
    return lines


def _label(s: Severity | None) -> str:
    return s.label if s is not None else "?"


def explain(c: Classification) -> list[str]:
    lines = [verdict(c), *hint_lines(c), highlight(c.post.text, c.hits)]
    lines += [describe(h) for h in sorted(c.hits, key=lambda h: h.start)] or ["nothing fired"]
    lines += decision(c)
    if c.topics:
        lines.append(f"topics: {', '.join(c.topics)}")
    lines.append(f"rules version {c.rules_version}")
    return lines
