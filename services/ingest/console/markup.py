"""How the console shows things to people: severities, highlighted explanations, times.

Pure functions over the models; the templates call them. Severity is never colour alone: each
has an icon and words as well, so it reads the same in greyscale and for colour-blind people.
"""

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from shared.models import Hit
from shared.severity import Severity


@dataclass(frozen=True)
class Badge:
    css: str
    icon: str
    label: str


BADGES = {
    Severity.RED_ALERT.value: Badge("sev-red", "▲", "red alert"),
    Severity.ASSESSING.value: Badge("sev-assessing", "◆", "assessing"),
    Severity.NO_DANGER.value: Badge("sev-none", "●", "no danger"),
}


def badge(severity: str | Severity | None) -> Markup:
    b = BADGES.get(str(severity or ""), Badge("sev-unknown", "?", str(severity or "unknown")))
    return Markup('<span class="sev {}"><span aria-hidden="true">{}</span> {}</span>').format(
        b.css, b.icon, b.label
    )


def _hit_class(hit: Hit) -> str:
    if hit.effect != "counted":
        return f"hit off {hit.effect}"
    if hit.kind == "cue":
        return f"hit cue {BADGES[hit.severity.value].css if hit.severity else ''}"
    return f"hit mod {hit.kind}"


def _hit_title(hit: Hit) -> str:
    what = f"{hit.severity.label} cue" if hit.kind == "cue" and hit.severity else hit.kind
    fate = (
        "" if hit.effect == "counted" else f", {hit.effect}" + (f" by {hit.by}" if hit.by else "")
    )
    return f"{what} ({hit.rule}{fate})"


def highlight(text: str, hits: list[Hit]) -> Markup:
    """The text, escaped, with each rule that fired marked; overlapping hits are marked once."""
    out: list[str] = []
    pos = 0
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.start < pos:
            continue
        out.append(str(escape(text[pos : hit.start])))
        out.append(
            str(
                Markup('<mark class="{}" title="{}">{}</mark>').format(
                    _hit_class(hit), _hit_title(hit), text[hit.start : hit.end]
                )
            )
        )
        pos = hit.end
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def when(value: str | datetime | None) -> Markup:
    """A <time> the page's script shows in the viewer's time zone; UTC until it runs."""
    if value is None:
        return Markup("—")
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return Markup('<time datetime="{}">{}</time>').format(
        at.isoformat(), at.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
