"""Salient words: what a post is about, for telling whether two posts speak of the same event."""

import re
from collections.abc import Iterable, Sequence

MAX_TERMS = 200
MIN_SHARED = 2

_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have haven't
    having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm
    i've if in into is isn't it it's its itself just let's me more most mustn't my myself no nor
    not now of off on once only or other ought our ours ourselves out over own same shan't she
    she'd she'll she's should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through to
    too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's will with won't would wouldn't you
    you'd you'll you're you've your yours yourself yourselves
    says said say saying told tells according reports reported reporting report update updates
    breaking news just still now today tonight yesterday minutes hours ago also via new latest
    one two three first last get got going like really think know thing things lot yeah thanks
    thank please people time way well even much many may might must shall
    """.split()
)


def _stem(word: str) -> str:
    # Enough to match "leaks"/"leak", "radiators"/"radiator"; not a linguist's stemmer.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def salient_terms(text: str) -> set[str]:
    terms = set()
    for match in _WORD.finditer(text.lower()):
        word = match.group().strip("'’-")
        if len(word) < 3 or word in STOP_WORDS:
            continue
        terms.add(_stem(word))
    return terms


def merge_terms(known: Sequence[str], new: Iterable[str]) -> list[str]:
    """An incident's vocabulary: oldest words kept first, capped."""
    seen = dict.fromkeys(known)
    for term in sorted(new):
        if len(seen) >= MAX_TERMS:
            break
        seen.setdefault(term)
    return list(seen)


def similarity(post_terms: set[str], incident_terms: Iterable[str]) -> float:
    """The share of the post's salient words the incident has seen (0 below MIN_SHARED words)."""
    if not post_terms:
        return 0.0
    shared = len(post_terms.intersection(incident_terms))
    return shared / len(post_terms) if shared >= MIN_SHARED else 0.0
