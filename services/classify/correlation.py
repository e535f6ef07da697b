"""Which incident a post belongs to. Pure: the writer reads the candidates, this decides.

In order:
1. Its thread, its source's incident key (a PagerDuty dedup_key…) or the post it replies to
   names an incident: it joins it — unless that incident was resolved longer ago than the
   reopen window, in which case an alarming post opens a new incident for the thread.
2. Otherwise, an open incident sharing one of its topics, active within the correlation window,
   whose posts used similar words (salient words, not stop words) or the same place or numbered
   thing, and named no other place or object (terms.contradicts: "in Springfield" is not "in
   Shelbyville", "reactor 2" is not "reactor 4"): it joins the most similar.
3. Otherwise it opens a new incident if it is alarming (assessing or above), or joins nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.classify.incidents import opens_incident
from services.classify.terms import contradicts, names, salient_terms, share_names, similarity
from shared.models import Classification, Incident


@dataclass(frozen=True)
class Policy:
    correlation_window_s: float = 6 * 3600
    similarity: float = 0.25
    reopen_window_s: float = 24 * 3600


@dataclass(frozen=True)
class Choice:
    incident_id: str | None  # None: a new incident (when `new`) or none at all
    new: bool = False
    reason: str = ""


def choose(
    c: Classification,
    *,
    by_key: Incident | None,
    candidates: Sequence[Incident],
    now: datetime,
    policy: Policy,
) -> Choice:
    alarming = opens_incident(c)
    if by_key is not None:
        if by_key.is_open:
            return Choice(by_key.id, reason="same thread")
        resolved_for = (now - (by_key.resolved_at or by_key.updated_at)).total_seconds()
        if resolved_for <= policy.reopen_window_s:
            return Choice(by_key.id, reason="same thread")
        return Choice(None, new=alarming, reason="its thread's incident was resolved long ago")
    terms = salient_terms(c.post.text)
    named = names(c.post.text)
    best, best_score = None, 0.0
    for incident in candidates:
        if not incident.is_open or not set(c.topics).intersection(incident.topics):
            continue
        idle = (now - (incident.last_post_at or incident.updated_at)).total_seconds()
        if idle > policy.correlation_window_s:
            continue
        if contradicts(named, incident.names):
            continue
        score = similarity(terms, incident.terms)
        if share_names(named, incident.names):  # the same place or numbered thing
            score = max(score, policy.similarity)
        if score >= policy.similarity and score > best_score:
            best, best_score = incident, score
    if best is not None:
        return Choice(best.id, reason=f"same topic, similar wording ({best_score:.2f})")
    return Choice(None, new=alarming, reason="new" if alarming else "chatter")
