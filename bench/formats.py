"""What reading structured formats costs: status pages, CAP, hints in the rules engine.

    python bench/formats.py [--incidents N] [--seconds S] [--json]

Reports (pure code, no Redis, no network):
- statuspage_updates_per_s: parsing an incidents.json of N incidents with 6 updates each, the
  components they change, into posts;
- cap_messages_per_s: parsing one CAP 1.2 message (the spec's thunderstorm warning) through
  defusedxml into a post;
- cap_feed_entries_per_s: an Atom feed of N entries that embed their CAP alert;
- classify_text_us / classify_hint_us: the rules engine on the same status-page text, without
  and with its source's hint (the hint table lookup and the disagreement check on top);
- refuse_bomb_us: refusing an entity-expansion ("billion laughs") document.
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.classify.rules import compile_rules  # noqa: E402
from services.ingest.sources import cap, statuspage  # noqa: E402
from services.ingest.sources.base import SourceError  # noqa: E402
from shared.models import Post, SourceHint  # noqa: E402
from tests.source_servers import (  # noqa: E402
    BILLION_LAUGHS,
    CAP_THUNDERSTORM,
    StatusPage,
    StatusUpdate,
    cap_alert,
)

STEPS = [
    ("investigating", {"Actions": "degraded_performance", "Pages": "degraded_performance"}),
    ("identified", {}),
    ("monitoring", {"Pages": "operational"}),
    ("identified", {"Actions": "partial_outage"}),
    ("monitoring", {"Actions": "operational"}),
    ("resolved", {}),
]
TEXT = "Incident with Actions and Pages — Investigating: We are investigating reports of "
TEXT += "degraded performance for Actions and Pages."


def rate(fn, units: int, seconds: float) -> float:
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or runs < 3:
        fn()
        runs += 1
    return units * runs / elapsed


def page(incidents: int) -> bytes:
    p = StatusPage()
    for n in range(incidents):
        for step, (status, components) in enumerate(STEPS):
            update = StatusUpdate(
                f"u{n}-{step}", status, f"Update {step}.", n * 90 + step * 10, components
            )
            p.update(f"inc{n:05d}", f"Incident {n} with Actions and Pages", "major", update)
    return p.body()


def feed(entries: int) -> bytes:
    t0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)

    def alert(n: int) -> str:
        xml = cap_alert(
            f"HGX-{n}",
            sent=t0,
            expires=t0 + timedelta(hours=6),
            headline=f"Chlorine release {n}",
            areas=[("Harris, TX", "048201")],
        )
        return xml.split("?>", 1)[1]  # without its XML declaration, inside the entry

    items = "".join(
        f"<entry><id>urn:e{n}</id><title>t</title><updated>{t0.isoformat()}</updated>"
        f"<content type='text/xml'>{alert(n)}</content></entry>"
        for n in range(entries)
    )
    return (
        f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><id>f</id>"
        f"<title>w</title><updated>{t0.isoformat()}</updated>{items}</feed>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=50, help="incidents / feed entries")
    parser.add_argument("--seconds", type=float, default=1.0, help="per figure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, s = args.incidents, args.seconds

    doc = page(n)
    updates = len(statuspage.parse_incidents(doc, "s").posts)
    thunder = CAP_THUNDERSTORM.encode()
    atom = feed(n)
    engine = compile_rules((ROOT / "config" / "rules.yaml").read_text())
    hint = SourceHint(scheme="statuspage", values={"status": "investigating", "impact": "major"})
    plain, hinted = Post(text=TEXT), Post(text=TEXT, hint=hint)

    def refuse() -> None:
        try:
            cap.safe_xml(BILLION_LAUGHS)
        except SourceError:
            return
        raise AssertionError("the bomb was parsed")

    figures = {
        "statuspage_updates_per_s": rate(lambda: statuspage.parse_incidents(doc, "s"), updates, s),
        "cap_messages_per_s": rate(lambda: cap.parse_document(thunder, "w"), 1, s),
        "cap_feed_entries_per_s": rate(lambda: cap.parse_document(atom, "w"), n, s),
        "classify_text_us": 1e6 / rate(lambda: engine.classify(plain), 1, s),
        "classify_hint_us": 1e6 / rate(lambda: engine.classify(hinted), 1, s),
        "refuse_bomb_us": 1e6 / rate(refuse, 1, s),
    }
    figures = {k: round(v, 1) for k, v in figures.items()}
    if args.json:
        print(json.dumps(figures))
        return
    print(f"status page: {n} incidents, {updates} updates; CAP feed: {n} entries")
    for name, value in figures.items():
        print(f"  {name:<26} {value:>12,.1f}")


if __name__ == "__main__":
    main()
