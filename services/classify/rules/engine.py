"""The severity engine: a rules file compiled once into one pattern, applied NegEx/ConText-style.

1. One combined regular expression finds every cue, modifier and topic word in a post (literal
   phrases as a trie, so the expression stays fast however many phrases there are).
2. Each modifier acts on the cues in its scope: negation and history cancel them, uncertainty
   turns a red alert into "assessing", and negation also cancels an all-clear.
3. Scores per severity decide: an all-clear at least as strong as the danger wins; otherwise the
   highest severity whose score reaches its threshold; otherwise the default.

Pure and synchronous: no I/O, no clock except for the timestamp on the result.
"""

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from services.classify.rules.schema import Direction, ModifierKind, RulesFile, Scope
from shared.models import Classification, Hit, Post
from shared.severity import Severity

_WORD = re.compile(r"\w+")
_CLAUSE_END = re.compile(
    r"[;:.!?…]|\s[-–—]+\s|\b(?:but|however|although|though|whereas|except)\b", re.I
)
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)|\n")
_SEP = r"\W+"  # between the words of a phrase: spaces, hyphens, quotes, apostrophes…

CUE = "cue"
TOPIC = "topic"


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    kind: str  # CUE, TOPIC or a ModifierKind value
    weight: float = 0.0
    severity: Severity | None = None
    scope: Scope | None = None


@dataclass(slots=True)
class _Found:
    rule: _Rule
    start: int
    end: int
    first: int  # word index of the first word
    last: int  # word index of the last word
    clause: int
    sentence: int
    effect: str = "counted"
    by: str | None = None


def normalise(phrase: str) -> str:
    return " ".join(_WORD.findall(phrase.lower()))


def rules_version(rules: RulesFile) -> str:
    canonical = json.dumps(rules.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class Engine:
    def __init__(self, rules: RulesFile, version: str | None = None) -> None:
        self.rules = rules
        self.version = version or rules_version(rules)
        self._literal: dict[str, list[_Rule]] = {}
        self._regex: dict[str, _Rule] = {}
        alternatives: list[str] = []

        def add_phrases(rule: _Rule, phrases: Iterable[str]) -> None:
            for p in phrases:
                self._literal.setdefault(normalise(p), []).append(rule)

        for cue in rules.cues:
            rule = _Rule(cue.id, CUE, cue.weight, cue.severity)
            add_phrases(rule, cue.phrases)
            alternatives += self._add_regex(rule, cue.regex)
        for mod in rules.modifiers:
            rule = _Rule(mod.id, mod.kind.value, mod.weight, scope=mod.scope)
            add_phrases(rule, mod.phrases)
            alternatives += self._add_regex(rule, mod.regex)
        for topic, words in rules.topics.items():
            add_phrases(_Rule(topic, TOPIC), words)

        literal = f"(?P<lit>{_trie(self._literal)})(?!\\w)" if self._literal else None
        body = "|".join([literal, *alternatives] if literal else alternatives) or r"(?!x)x"
        self._pattern = re.compile(rf"(?<!\w)(?:{body})", re.I)
        trust = rules.trust
        self._trust_sources = {k.lower(): v for k, v in trust.sources.items()}
        self._trust_authors = {k.lower().lstrip("@"): v for k, v in trust.authors.items()}

    def _add_regex(self, rule: _Rule, patterns: list[str]) -> list[str]:
        out = []
        for p in patterns:
            name = f"x{len(self._regex)}"
            self._regex[name] = rule
            out.append(f"(?P<{name}>{p})")
        return out

    # --- classification ------------------------------------------------------------------------

    def classify(self, post: Post) -> Classification:
        text = post.text
        found = self._find(text)
        topics = sorted({f.rule.id for f in found if f.rule.kind == TOPIC})
        trust = self.trust(post)
        if post.severity is not None:
            # The source already decided (PagerDuty, Alertmanager): rules only add topics.
            return Classification(
                post=post,
                severity=post.severity,
                topics=topics,
                trust=trust,
                hits=[_hit(f, text) for f in found],
                rules_version=self.version,
            )
        _apply_modifiers(found)
        red = assessing = clear = 0.0
        stand_down = False
        for f in found:
            if f.effect != "counted":
                continue
            kind, w = f.rule.kind, f.rule.weight
            if kind == CUE:
                if f.rule.severity is Severity.RED_ALERT:
                    red += w
                elif f.rule.severity is Severity.ASSESSING:
                    assessing += w
            elif kind == ModifierKind.UNCERTAINTY:
                assessing += w
            elif kind in (ModifierKind.ALL_CLEAR, ModifierKind.STAND_DOWN):
                clear += w * trust
                stand_down = stand_down or kind == ModifierKind.STAND_DOWN
        assessing += sum(f.rule.weight for f in found if f.effect == "hedged")

        th = self.rules.thresholds
        if red >= th.red_alert:
            danger, danger_score = Severity.RED_ALERT, red
        elif red + assessing >= th.assessing:
            danger, danger_score = Severity.ASSESSING, red + assessing
        else:
            danger, danger_score = None, 0.0
        is_clear = clear >= th.all_clear and clear >= danger_score
        if is_clear:
            severity = Severity.NO_DANGER
        else:
            severity = danger or self.rules.default_severity
            stand_down = False
        return Classification(
            post=post,
            severity=severity,
            scores={
                Severity.RED_ALERT.value: round(red, 3),
                Severity.ASSESSING.value: round(assessing, 3),
                Severity.NO_DANGER.value: round(clear, 3),
            },
            topics=topics,
            all_clear=is_clear,
            stand_down=stand_down,
            trust=trust,
            hits=[_hit(f, text) for f in found],
            rules_version=self.version,
        )

    def trust(self, post: Post) -> float:
        if post.author and (t := self._trust_authors.get(post.author.lower().lstrip("@"))):
            return t
        return self._trust_sources.get(post.source.lower(), self.rules.trust.default)

    def _find(self, text: str) -> list[_Found]:
        matches = list(self._pattern.finditer(text))
        if not matches:
            return []
        words = [m.start() for m in _WORD.finditer(text)]
        clauses = [m.start() for m in _CLAUSE_END.finditer(text)]
        sentences = [m.start() for m in _SENTENCE_END.finditer(text)]
        found = []
        for m in matches:
            start, end = m.span()
            group = m.lastgroup
            rules = self._literal.get(normalise(m.group()), []) if group == "lit" else []
            if group and group != "lit":
                rules = [self._regex[group]]
            first = bisect_left(words, start)
            last = max(first, bisect_left(words, end) - 1)
            clause = bisect_right(clauses, start)
            sentence = bisect_right(sentences, start)
            found += [_Found(r, start, end, first, last, clause, sentence) for r in rules]
        return found


# --- modifiers -----------------------------------------------------------------------------------

# Which modifier kinds act on which hits, strongest first: the first that reaches a hit decides.
_ACTS_ON = (
    (ModifierKind.NEGATION, {CUE, ModifierKind.ALL_CLEAR, ModifierKind.STAND_DOWN}, "negated"),
    (ModifierKind.HISTORY, {CUE}, "historical"),
    (ModifierKind.UNCERTAINTY, {CUE}, "hedged"),
)


def _apply_modifiers(found: list[_Found]) -> None:
    for kind, targets, effect in _ACTS_ON:
        modifiers = [f for f in found if f.rule.kind == kind and f.effect == "counted"]
        for mod in modifiers:
            for f in found:
                if f.effect != "counted" or f.rule.kind not in targets or f is mod:
                    continue
                if effect == "hedged" and f.rule.severity is not Severity.RED_ALERT:
                    continue
                assert mod.rule.scope is not None
                if _in_scope(mod, f, mod.rule.scope):
                    f.effect, f.by = effect, mod.rule.id


def _in_scope(mod: _Found, target: _Found, scope: Scope) -> bool:
    if target.first > mod.last:
        if scope.direction is Direction.BACKWARD:
            return False
        gap = target.first - mod.last - 1
    elif target.last < mod.first:
        if scope.direction is Direction.FORWARD:
            return False
        gap = mod.first - target.last - 1
    else:
        return False  # overlapping spans: one phrase is not its own modifier
    if scope.words is not None and gap >= scope.words:
        return False
    if scope.until == "clause" and mod.clause != target.clause:
        return False
    return not (scope.until == "sentence" and mod.sentence != target.sentence)


def _hit(f: _Found, text: str) -> Hit:
    return Hit(
        rule=f.rule.id,
        kind=f.rule.kind,
        text=text[f.start : f.end],
        start=f.start,
        end=f.end,
        severity=f.rule.severity,
        weight=f.rule.weight,
        effect=f.effect,  # type: ignore[arg-type]
        by=f.by,
    )


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
