"""The severity engine: a rules file compiled once into one pattern, applied NegEx/ConText-style.

1. Every cue, modifier and ignored phrase in a post is found in one left-to-right scan: literal
   phrases by one expression (a trie, so it stays fast however many phrases there are), rule
   regexes by RE2, a linear-time engine (linear.py: an operator's regex cannot stall the
   process). Matches do not overlap: at one position regexes are tried first, then the longest
   phrase, so "no danger" is an all-clear and not a negation followed by a cue, and an ignored
   phrase ("fire drill") hides the cue inside it. One RE2 set tells which rules' regexes can
   match a post at all; most posts need none. Topic words are looked up word by word, apart, so
   they never hide a cue.
2. Modifiers act on what is in their scope, in a fixed order: uncertainty disarms negations
   ("can't tell if it's the controlled burn"); negation cancels cues, all-clears and hedges;
   history cancels cues and hedges; uncertainty turns red-alert cues into assessing ones; an
   all-clear or stand-down cancels the cues it speaks about ("the evacuation order is lifted").
   Uncertainty modifiers are never cancelled by an all-clear: reassurance while people are still
   looking ("no impacts, still working to understand it") is not an all-clear.
3. Scores per severity decide: an all-clear (times the source's trust) stronger than the danger
   left wins; otherwise the highest severity whose score reaches its threshold; otherwise the
   default. A hedge that needs a subject weighs nothing in a post with no cue and no topic
   ("might be late tomorrow").

Pure and synchronous: no I/O, no clock except for the timestamp on the result.
"""

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

import re2

from services.classify.rules.hints import tables as hint_tables
from services.classify.rules.hints import with_hint
from services.classify.rules.linear import OPTIONS, Encoded, RuleRegex, compile_rule
from services.classify.rules.schema import Direction, ModifierKind, RulesFile, Scope
from services.classify.trusted import trusted
from shared.models import Classification, Hit, Post, utcnow
from shared.severity import Severity

_WORD = re.compile(r"\w+")
# A "." or ":" inside a word ("M7.1", "10:17", "youtube.com") ends nothing.
_CLAUSE_END = re.compile(
    r"[;!?…()]|[.:](?!\w)|\s[-–—]+\s|\b(?:but|however|although|though|whereas|except|while)\b",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?…]+(?=\W|$)|\n")
# Between the words of a phrase: spaces, hyphens, quotes, apostrophes — not clause punctuation.
_SEP = r"[^\w.,;:!?…]+"
# Where a match may start: at the start of a word, or at a mark that is not a space ("?", an
# emoji). Checked once per position, so the many alternatives are tried at few positions.
_START = r"(?:(?<!\w)(?=\w)|(?=[^\w\s]))"

CUE = "cue"
IGNORE = "ignore"

COUNTED, NEGATED, HEDGED, HISTORICAL, IGNORED = (
    "counted",
    "negated",
    "hedged",
    "historical",
    "ignored",
)
_CLEARS = (ModifierKind.ALL_CLEAR, ModifierKind.STAND_DOWN)
_UNSURE = ModifierKind.UNCERTAINTY
_AS_FOUND = frozenset({COUNTED})


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    kind: str  # CUE, IGNORE or a ModifierKind value
    weight: float = 0.0
    severity: Severity | None = None
    scope: Scope | None = None
    needs_subject: bool = (
        False  # an uncertainty modifier that weighs only in a post about something
    )
    # What every hit of this rule has in common; hits are copies of it with their own span.
    template: Hit = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        hit = Hit.model_construct(
            rule=self.id,
            kind=self.kind,
            text="",
            start=0,
            end=0,
            severity=self.severity,
            weight=self.weight,
            effect=COUNTED,
            by=None,
        )
        object.__setattr__(self, "template", hit)


@dataclass(slots=True)
class _Found:
    rule: _Rule
    start: int
    end: int
    effect: str = COUNTED
    by: str | None = None
    weighs: bool = True  # False: a hedge in a post about nothing (no cue, no topic)
    # Where it is, for scopes (set by _locate when a modifier fired).
    first: int = 0  # word index of the first word
    last: int = 0  # word index of the last word
    clause: int = 0
    sentence: int = 0


def normalise(phrase: str) -> str:
    return " ".join(_WORD.findall(phrase.lower()))


def rules_version(rules: RulesFile) -> str:
    """A digest of what the rules say (not of comments or layout): same rules, same version."""
    canonical = json.dumps(rules.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


_STARTS = re.compile(_START)


class _Pattern:
    """Phrases (as one trie, Python's `re`) and regexes (RE2, each rule's apart)."""

    def __init__(self) -> None:
        self.literal: dict[str, list[_Rule]] = {}
        # In the order they are tried at one position: a rule's regexes, as compiled parts.
        self.regex: list[tuple[_Rule, RuleRegex]] = []
        self._cores: list[str] = []  # each part's regex without look-arounds: for the set

    def add(self, rule: _Rule, phrases: Iterable[str], regexes: Iterable[str] = ()) -> None:
        for p in phrases:
            rules = self.literal.setdefault(normalise(p), [])
            if rules and rules[0].kind == IGNORE:
                continue  # an ignored phrase means nothing, whatever else lists it
            if rule.kind == IGNORE:
                rules.clear()
            if rule not in rules:
                rules.append(rule)
        if regexes := list(regexes):
            for part in compile_rule(regexes):
                self.regex.append((rule, part))
                self._cores.append(part.core.pattern)

    def compile(self) -> re.Pattern[str] | None:
        """The phrases' pattern for a post's text in lower case (see `lower`).

        Phrases end at the end of a word; the longest wins. The trie, in lower case like the
        text, is matched case-sensitively: the regular expression engine then skips a branch on
        its first letter without entering it, which makes the trie twice as fast.
        """
        if not self.literal:
            return None
        return re.compile(f"{_START}(?P<lit>{_trie(self.literal)})(?!\\w)")

    def regex_set(self) -> "re2.Set | None":
        """Which parts' regexes (without their look-arounds) match somewhere in a text."""
        if not self._cores:
            return None
        found = re2.Set.SearchSet(OPTIONS)
        for core in self._cores:
            found.Add(core)  # already translated (linear.translate)
        found.Compile()
        return found

    def rules_of(self, m: re.Match[str]) -> list[_Rule]:
        text = m.group()  # most phrases are written with single spaces
        return self.literal.get(text) or self.literal.get(normalise(text), [])


class Engine:
    def __init__(self, rules: RulesFile, version: str | None = None) -> None:
        self.rules = rules
        self.version = version or rules_version(rules)
        main = _Pattern()
        main.add(_Rule(IGNORE, IGNORE), rules.ignore.phrases, rules.ignore.regex)
        for cue in rules.cues:
            main.add(_Rule(cue.id, CUE, cue.weight, cue.severity), cue.phrases, cue.regex)
        for mod in rules.modifiers:
            rule = _Rule(
                mod.id, mod.kind.value, mod.weight, scope=mod.scope, needs_subject=mod.needs_subject
            )
            main.add(rule, mod.phrases, mod.regex)
        self._main, self._main_re, self._regex_set = main, main.compile(), main.regex_set()
        # Topic phrases by their first word: one dictionary lookup per word of a post.
        self._topics: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for topic, phrases in rules.topics.items():
            for phrase in phrases:
                first, *rest = normalise(phrase).split()
                self._topics.setdefault(first, []).append((tuple(rest), topic))
        self.hints = hint_tables(rules.hints)
        trust = rules.trust
        self._trust_sources = {k.lower(): v for k, v in trust.sources.items()}
        self._trust_authors = {k.lower().lstrip("@"): v for k, v in trust.authors.items()}

    # --- classification ------------------------------------------------------------------------

    def classify(self, post: Post) -> Classification:
        text = post.text
        low = lower(text)
        found = self._find(text, low)
        topics = self._topics_in(low)
        trust = self.trust(post)
        if post.severity is not None:
            # The source already decided (PagerDuty, Alertmanager): rules only add topics.
            return _classification(
                post=post,
                severity=post.severity,
                scores={},
                topics=topics,
                all_clear=False,
                stand_down=False,
                trust=trust,
                hits=[_hit(f, text) for f in found],
                rules_version=self.version,
            )
        _apply_modifiers(found)
        if not topics and not any(f.rule.kind == CUE for f in found):
            _without_subject(found)
        red, assessing, clear, stand_down = _scores(found, trust)
        th = self.rules.thresholds
        if red >= th.red_alert:
            danger, danger_score = Severity.RED_ALERT, red
        elif red + assessing >= th.assessing:
            danger, danger_score = Severity.ASSESSING, red + assessing
        else:
            danger, danger_score = None, 0.0
        is_clear = clear >= th.all_clear and clear > danger_score
        c = _classification(
            post=post,
            severity=Severity.NO_DANGER if is_clear else danger or self.rules.default_severity,
            scores={
                Severity.RED_ALERT.value: round(red, 3),
                Severity.ASSESSING.value: round(assessing, 3),
                Severity.NO_DANGER.value: round(clear, 3),
            },
            topics=topics,
            all_clear=is_clear,
            stand_down=is_clear and stand_down,
            trust=trust,
            hits=[_hit(f, text) for f in found],
            rules_version=self.version,
        )
        # A structured source's own word outranks the cue words; the text is kept beside it.
        return c if post.hint is None else with_hint(c, post.hint, self.hints)

    def trust(self, post: Post) -> float:
        if post.author and (t := self._trust_authors.get(post.author.lower().lstrip("@"))):
            return t
        return self._trust_sources.get(post.source.lower(), self.rules.trust.default)

    def topics(self, text: str) -> list[str]:
        return self._topics_in(lower(text))

    def _topics_in(self, low: str) -> list[str]:
        if not self._topics:
            return []
        words = _WORD.findall(low)
        spans: list[tuple[int, int, str]] = []
        for i, word in enumerate(words):
            for rest, topic in self._topics.get(word, ()):
                if not rest or tuple(words[i + 1 : i + 1 + len(rest)]) == rest:
                    spans.append((i, i + 1 + len(rest), topic))
        # The longer phrase says what a word means: "flight" is aviation, but not inside
        # "flight director" (space); "ship" is maritime, but not inside "Progress cargo ship".
        return sorted(
            {
                topic
                for start, end, topic in spans
                if not any(
                    s <= start and end <= e and e - s > end - start and t != topic
                    for s, e, t in spans
                )
            }
        )

    def _find(self, text: str, low: str | None = None) -> list[_Found]:
        low = lower(text) if low is None else low
        encoded = Encoded(low) if self._regex_set is not None else None
        active = self._regex_set.Match(encoded.data) if encoded is not None else None
        if active:
            assert encoded is not None
            found = self._scan(encoded, sorted(active))
        elif self._main_re is not None:  # no regex can match: the phrases alone, in C
            found = [
                _Found(r, m.start(), m.end(), IGNORED if r.kind == IGNORE else COUNTED)
                for m in self._main_re.finditer(low)
                for r in self._main.rules_of(m)
            ]
        else:
            return []
        if any(f.rule.scope is not None for f in found):
            _locate(found, text)  # only modifiers need to know where words and clauses are
        return found

    def _scan(self, encoded: Encoded, active: list[int]) -> list[_Found]:
        """Phrases and the regexes that may match, merged as one alternation would: leftmost
        first; at one position a regex (in rule order) before a phrase; no overlaps."""
        low = encoded.text
        parts = self._main.regex
        phrases = self._main_re
        may_start = _STARTS.match  # checked where a regex matches, not found at every word

        def next_regex(k: int, pos: int) -> tuple[int, int, int] | None:
            part = parts[k][1]
            while (at := part.search(encoded, pos)) is not None:
                if may_start(low, at) and (end := part.match_at(encoded, at)) is not None:
                    return at, k, end
                pos = at + 1
            return None

        pending = {k: next_regex(k, 0) for k in active}
        phrase = phrases.search(low) if phrases is not None else None
        found: list[_Found] = []
        pos = 0
        while True:
            for k, c in pending.items():
                if c is not None and c[0] < pos:
                    pending[k] = next_regex(k, pos)
            if phrase is not None and phrase.start() < pos:
                phrase = phrases.search(low, pos) if phrases is not None else None
            best = min((c for c in pending.values() if c is not None), default=None)
            if best is not None and (phrase is None or best[0] <= phrase.start()):
                at, k, end = best
                rule = parts[k][0]
                found.append(_Found(rule, at, end, IGNORED if rule.kind == IGNORE else COUNTED))
                pos = end
            elif phrase is not None:
                for r in self._main.rules_of(phrase):
                    state = IGNORED if r.kind == IGNORE else COUNTED
                    found.append(_Found(r, phrase.start(), phrase.end(), state))
                pos = phrase.end()
            else:
                return found


def lower(text: str) -> str:
    """The text in lower case, each character where it was (offsets stay those of the post)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    # A few characters grow in lower case ("İ" is "i" and a combining dot): keep those as
    # they are, so that every match's offsets still point into the post.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _locate(found: list[_Found], text: str) -> None:
    words = [m.start() for m in _WORD.finditer(text)]
    clauses = [m.start() for m in _CLAUSE_END.finditer(text)]
    sentences = [m.start() for m in _SENTENCE_END.finditer(text)]
    for f in found:
        f.first = bisect_left(words, f.start)
        f.last = max(f.first, bisect_left(words, f.end) - 1)
        # Punctuation belongs to what it ends: a "?" hedges its own sentence.
        f.clause = bisect_left(clauses, f.start)
        f.sentence = bisect_left(sentences, f.start)


# --- scores --------------------------------------------------------------------------------------


def _scores(found: list[_Found], trust: float) -> tuple[float, float, float, bool]:
    """Red-alert, assessing and all-clear scores, and whether a stand-down counted."""
    red = assessing = clear = 0.0
    stand_down = False
    for f in found:
        kind, w = f.rule.kind, f.rule.weight
        if kind == CUE and f.effect == HEDGED:
            assessing += w
        if f.effect != COUNTED:
            continue
        if kind == CUE:
            if f.rule.severity is Severity.RED_ALERT:
                red += w
            elif f.rule.severity is Severity.ASSESSING:
                assessing += w
        elif kind == ModifierKind.UNCERTAINTY and f.weighs:
            assessing += w
        elif kind in _CLEARS:
            clear += w * trust
            stand_down = stand_down or kind == ModifierKind.STAND_DOWN
    return red, assessing, clear, stand_down


# --- modifiers -----------------------------------------------------------------------------------

# Which modifier kinds act on which hits, in order; a modifier that was itself cancelled acts on
# nothing. Columns: the kinds of modifier, the kinds of hit they act on, the effect, whether only
# red-alert cues are touched (an assessing cue is already uncertain), and which effects they
# override (an all-clear also cancels a hedged cue: "expected to stay at sea, no threat").
# First, a hedge disarms a negation it speaks about ("can't tell if it's the controlled burn":
# the burn is not a known drill); then a negation or a past event disarms a hedge as it does a
# cue ("a drill: you may see smoke", "the 2014 epidemic taught us contact tracing").
_Row = tuple[tuple[str, ...], frozenset[str], str, bool, frozenset[str]]
_ACTS_ON: tuple[_Row, ...] = (
    ((_UNSURE,), frozenset({ModifierKind.NEGATION}), HEDGED, False, frozenset({COUNTED})),
    ((ModifierKind.NEGATION,), frozenset({CUE, *_CLEARS, _UNSURE}), NEGATED, False, _AS_FOUND),
    ((ModifierKind.HISTORY,), frozenset({CUE, _UNSURE}), HISTORICAL, False, _AS_FOUND),
    ((_UNSURE,), frozenset({CUE}), HEDGED, True, _AS_FOUND),
    (_CLEARS, frozenset({CUE}), NEGATED, False, frozenset({COUNTED, HEDGED})),
)


def _apply_modifiers(found: list[_Found]) -> None:
    # Hits are in text order, so a modifier's scope is a slice of them: found by bisection, a
    # post with a thousand hits costs a thousand small slices, not a million scope checks.
    candidates = [f for f in found if f.rule.scope is not None]  # modifiers, in text order
    if not candidates:
        return
    firsts = [f.first for f in found]
    lasts = [f.last for f in found]
    clauses = [f.clause for f in found]
    sentences = [f.sentence for f in found]
    for kinds, targets, effect, red_only, overrides in _ACTS_ON:
        modifiers = [f for f in candidates if f.rule.kind in kinds and f.effect == COUNTED]
        for mod in modifiers:
            scope = mod.rule.scope
            assert scope is not None
            lo, hi = 0, len(found)
            if scope.words is not None:
                lo = max(lo, bisect_left(lasts, mod.first - scope.words - 1))
                hi = min(hi, bisect_right(firsts, mod.last + scope.words + 1))
            if scope.until == "clause":
                lo = max(lo, bisect_left(clauses, mod.clause))
                hi = min(hi, bisect_right(clauses, mod.clause))
            elif scope.until == "sentence":
                lo = max(lo, bisect_left(sentences, mod.sentence))
                hi = min(hi, bisect_right(sentences, mod.sentence))
            for f in found[lo:hi]:
                if f.effect not in overrides or f.rule.kind not in targets:
                    continue
                if red_only and f.rule.severity is not Severity.RED_ALERT:
                    continue
                if _in_scope(mod, f, mod.rule.scope):
                    f.effect, f.by = effect, mod.rule.id


def _without_subject(found: list[_Found]) -> None:
    """A post with no cue and no topic is about nothing the rules know: hedges that need a
    subject weigh nothing ("might be late tomorrow", "anyone know a good plumber?")."""
    for f in found:
        if f.rule.needs_subject:
            f.weighs = False


def _in_scope(mod: _Found, target: _Found, scope: Scope) -> bool:
    """`words: N`: the target starts within the N words next to the trigger, in its direction."""
    if target.first > mod.last:
        if scope.direction is Direction.BACKWARD:
            return False
        gap = target.first - mod.last - 1
    elif target.last < mod.first:
        if scope.direction is Direction.FORWARD:
            return False
        gap = mod.first - target.last - 1
    else:
        return False  # the same words: a phrase is not its own modifier
    if scope.words is not None and gap >= scope.words:
        return False
    if scope.until == "clause" and mod.clause != target.clause:
        return False
    return not (scope.until == "sentence" and mod.sentence != target.sentence)


def _classification(
    *,
    post: Post,
    severity: Severity,
    scores: dict[str, float],
    topics: list[str],
    all_clear: bool,
    stand_down: bool,
    trust: float,
    hits: list[Hit],
    rules_version: str,
) -> Classification:
    fields = {
        "post": post,
        "severity": severity,
        "scores": scores,
        "topics": topics,
        "all_clear": all_clear,
        "stand_down": stand_down,
        "trust": trust,
        "hits": hits,
        "hint": None,
        "rules_version": rules_version,
        "model": None,
        "incident_id": None,
        "classified_at": utcnow(),
    }
    return trusted(Classification, fields, _GIVEN)


_GIVEN = frozenset(Classification.model_fields) - {"hint", "model"}


def _hit(f: _Found, text: str) -> Hit:
    # The rule's template hit with its own span.
    fields = f.rule.template.__dict__.copy()
    fields["text"] = text[f.start : f.end]
    fields["start"], fields["end"] = f.start, f.end
    fields["effect"], fields["by"] = f.effect, f.by
    if not f.weighs:
        fields["weight"] = 0.0
    return trusted(Hit, fields, fields)


# --- the trie ------------------------------------------------------------------------------------


def _trie(phrases: Iterable[str]) -> str:
    """One regex for many literal phrases, factored by prefix; longer phrases are tried first."""
    root: dict[str, dict] = {}
    for phrase in phrases:
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _node(root)


def _node(node: dict[str, dict]) -> str:
    ends_here = "" in node
    branches = [
        (_SEP if ch == " " else re.escape(ch)) + _node(child)
        for ch, child in sorted(node.items())
        if ch
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends_here:
        return f"(?:{body})?"
    return body
