"""Salient words and names: what a post is about, for telling whether two posts speak of the same
event — and the names and numbers that tell one place or object from another."""

import re
from collections.abc import Iterable, Sequence, Set
from functools import lru_cache

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


@lru_cache(maxsize=4096)
def salient_terms(text: str) -> frozenset[str]:
    # Cached: correlation and the incident state machine both ask, and feeds repeat texts.
    terms = set()
    for match in _WORD.finditer(text.lower()):
        word = match.group().strip("'’-")
        if len(word) < 3 or word in STOP_WORDS:
            continue
        terms.add(_stem(word))
    return frozenset(terms)


def merge_terms(known: Sequence[str], new: Iterable[str]) -> list[str]:
    """An incident's vocabulary: oldest words kept first, capped."""
    seen = dict.fromkeys(known)
    for term in sorted(new):
        if len(seen) >= MAX_TERMS:
            break
        seen.setdefault(term)
    return list(seen)


def similarity(post_terms: Set[str], incident_terms: Iterable[str]) -> float:
    """The share of the post's salient words the incident has seen (0 below MIN_SHARED words)."""
    if not post_terms:
        return 0.0
    shared = len(post_terms.intersection(incident_terms))
    return shared / len(post_terms) if shared >= MIN_SHARED else 0.0


# --- names: places, objects, numbers -----------------------------------------------------------

MAX_NAMES = 60
_TOKEN = re.compile(r"\d[\d,.]*[\dA-Za-z]|[^\W_][\w'’.-]*[^\W_]|[^\W_]|[.!?:;\n]", re.UNICODE)
_BREAK = frozenset(".!?:;\n")
_IDENTIFIER = re.compile(r"^[a-z]{1,3}-?\d+[a-z]?$")  # I-35W, A4, M25
# Capitalised but not a name: calendar words, and words that start many headlines.
NOT_NAMES = frozenset(
    """
    i monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december breaking update urgent alert
    warning watch advisory live
    """.split()
)
# "in Springfield", "near Moore", "off Orcas Island": where it happens.
LOCATIVE = frozenset("in near at outside off around across along over".split())
# "<noun> <number>" names one thing among others of its kind ("reactor 2" is not "reactor 4").
NUMBERED = frozenset(
    """
    flight route unit reactor highway interstate magnitude building terminal gate platform line
    module station exit pier level floor block sector zone track runway pad bay ward district
    well tower train bus ferry hall wing lot
    """.split()
)


@lru_cache(maxsize=4096)
def names(text: str) -> frozenset[str]:
    """Names of places and things in a post, lower-cased: capitalised words not opening a
    sentence ("… in Springfield", "Main Street"; an opening one when a capitalised word follows,
    "Cedar Creek"), acronyms marked `^` ("^usgs"; sources and agencies more than places, so they
    only ever count for a match), and the numbers that identify something, marked `#`
    ("Route 9" -> "#9", "I-35W" -> "#35w"; "200 homes" is a quantity). Title-cased headlines
    say nothing by their capitals: only their numbers count."""
    tokens = [t.strip("'’.-") or t for t in _TOKEN.findall(text)]
    words = [t for t in tokens if t not in _BREAK]
    capitals = sum(1 for w in words if w[:1].isupper())
    headline = len(words) >= 4 and capitals / len(words) > 0.6
    out: set[str] = set()
    opening = True
    previous = ""
    place: list[str] | None = None  # a capitalised run after "in", "near", "at"…
    for n, t in enumerate(tokens):
        if place is not None and not (t[:1].isupper() and t.isalpha()):
            if place:
                out.add("@" + " ".join(place))
                place = None
            elif t.lower() not in ("the", "a", "an"):
                place = None
        if t in _BREAK:
            opening, previous = True, ""
            continue
        if place is not None and t[:1].isupper() and t.isalpha() and not headline:
            place.append(_stem(t.lower()))
        if t.lower() in LOCATIVE:
            place = []
        low = t.lower()
        nxt = tokens[n + 1] if n + 1 < len(tokens) else ""
        if _IDENTIFIER.match(low):
            out.add("#" + low.lstrip("abcdefghijklmnopqrstuvwxyz-"))
        elif low[:1].isdigit():
            if previous in NUMBERED:
                out.add("#" + low)  # "Route 9", "flight 212", "magnitude 6.1"
        elif t.isupper() and len(t) >= 2 and t.isalpha():
            out.add("^" + low)
        elif t[:1].isupper() and len(t) > 1 and not headline:
            named = not opening or (nxt[:1].isupper() and nxt.isalpha() and not nxt.isupper())
            if named and low not in STOP_WORDS and low not in NOT_NAMES:
                out.add(_stem(low))
        opening = False
        previous = low
    if place:
        out.add("@" + " ".join(place))
    return frozenset(out)


def merge_names(known: Sequence[str], new: Iterable[str]) -> list[str]:
    """An incident's names: oldest kept first, capped."""
    seen = dict.fromkeys(known)
    for name in sorted(new):
        if len(seen) >= MAX_NAMES:
            break
        seen.setdefault(name)
    return list(seen)


def contradicts(post_names: Set[str], incident_names: Iterable[str]) -> bool:
    """The post names another place or object than the incident does:
    - it says where (`@`, "in Shelbyville"), the incident said where too, and never this place;
    - or it has identifying numbers, the incident has some too, and they share none;
    - or it has names, the incident has names, and they share none.
    Acronyms never contradict (an agency or a source is named beside any place)."""
    known = set(incident_names)
    words = {n.removeprefix("@") for n in known} | {w for n in known for w in n[1:].split()}
    places = {n for n in post_names if n.startswith("@")}
    known_places = any(n.startswith("@") for n in known)
    if places and known_places and not any(p[1:] in words or p in known for p in places):
        return True
    numbers = {n for n in post_names if n.startswith("#")}
    known_numbers = {n for n in known if n.startswith("#")}
    if numbers and known_numbers and not numbers & known_numbers:
        return True
    plain = {n for n in post_names if n[0] not in "#^@"}
    known_plain = {n for n in known if n[0] not in "#^@"}
    return bool(plain and known_plain and not plain & known_plain)


def share_names(post_names: Set[str], incident_names: Iterable[str]) -> bool:
    """They name the same place or numbered thing (acronyms aside): strong evidence."""
    return any(n[0] != "^" for n in post_names.intersection(incident_names))
