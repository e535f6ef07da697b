"""Rules first, the model where the rules are unsure: a classification an operator can follow.

The rules decide a post when they are sure of it: two or more signals (cues, hedges,
all-clears) that agree. They are unsure when
  - nothing fired (the default severity is a guess),
  - danger and an all-clear both fired (which one wins is a matter of weights), or
  - one danger or hedge signal decided alone (one word: a figure of speech, a name, a title?).
An all-clear or stand-down said alone is taken as said: the model is not asked.
Only then is the model asked, and its answer is taken when it is at least as sure as the
model file's `confidence` (0.6 shipped) and it RAISES the severity — or, where danger and an
all-clear both fired, moves it either way. A model never talks a danger word down alone: for an
alerting service a missed alarm costs more than a false one, and in cross-validation on the
tuned sets its "one word decided, but it is nothing" answers were right only 7 times in 12.
Otherwise the rules' answer stands. The classification
keeps both: the rules' hits and scores, and `model` with the model's probabilities, the words
that weighed most, why it was asked and whether it decided.

A post whose source set its severity, or whose source hint decided it (a status page's own
"major outage"), is never second-guessed.
"""

from services.classify.model.artifact import ModelArtifact
from services.classify.rules.engine import Engine
from services.classify.rules.schema import RulesFile
from services.classify.trusted import trusted
from shared.models import Classification, Hit, ModelOpinion, Post
from shared.severity import Severity

NOTHING = "nothing fired"
MIXED = "danger and an all-clear both fired"
ONE = "one signal decided alone"
_SIGNALS = frozenset({"cue", "uncertainty", "all_clear", "stand_down"})
# An all-clear or a stand-down said outright is the rules' to judge: it lowers or resolves an
# incident, and a model that overruled it would keep incidents open on reassurance.
_CLEARS = frozenset({"all_clear", "stand_down"})


def signals(c: Classification) -> list[Hit]:
    """The hits that weigh: cues (counted, or hedged into assessing ones), hedges, all-clears."""
    return [h for h in c.hits if h.kind in _SIGNALS and h.effect in ("counted", "hedged")]


def unsure(c: Classification) -> str | None:
    """Why the rules are unsure of this classification, or None when they are sure."""
    if c.post.severity is not None or (c.hint is not None and c.hint.matched):
        return None  # the source said it itself
    found = signals(c)
    if not found:
        return NOTHING
    danger = c.scores.get(Severity.RED_ALERT.value, 0) + c.scores.get(Severity.ASSESSING.value, 0)
    if danger > 0 and c.scores.get(Severity.NO_DANGER.value, 0) > 0:
        return MIXED
    if len(found) == 1 and found[0].kind not in _CLEARS:
        return f"{ONE} ({found[0].rule})"
    return None


_OPINION = frozenset(ModelOpinion.model_fields)


class Combined:
    """The classifier classify uses: the rules, with the model's opinion where they are unsure.

    `model` None: the rules alone (no model file, or a bad one — the loader warns).
    """

    def __init__(self, engine: Engine, model: ModelArtifact | None, words: int = 0) -> None:
        self.engine = engine
        self.model = model
        self.words = words  # the words that weighed most, kept on each opinion (explanations)

    @property
    def version(self) -> str:
        return self.engine.version  # the rules'; the model's is on each opinion it gives

    @property
    def rules(self) -> RulesFile:
        return self.engine.rules

    def topics(self, text: str) -> list[str]:
        return self.engine.topics(text)

    def classify(self, post: Post) -> Classification:
        c = self.engine.classify(post)
        if self.model is None or (why := unsure(c)) is None:
            return c
        p = self.model.predict(post.text, self.words)
        decided = p.probabilities[p.severity.value] >= self.model.confidence and may_move(
            why, c.severity, p.severity
        )
        # Built without validation (the values are ours) and set on the classification the
        # engine just made for this call: no copies on the hot path.
        opinion = trusted(
            ModelOpinion,
            {
                "version": self.model.version,
                "severity": p.severity,
                "probabilities": p.probabilities,
                "words": p.words,
                "unsure": why,
                "confidence": self.model.confidence,
                "rules_severity": c.severity,
                "decided": decided,
            },
            _OPINION,
        )
        if decided:
            overrule(c, opinion)
        c.model = opinion
        return c


def may_move(why: str, rules: Severity, model: Severity) -> bool:
    """Whether the model may replace the rules' severity: raise it, or lower it on mixed signals."""
    return model > rules or (model < rules and why == MIXED)


def overrule(c: Classification, opinion: ModelOpinion) -> None:
    # The model's severity, and none of the rules' all-clear: an all-clear the model overruled
    # is not one (and the model never says "all clear" itself).
    c.severity, c.all_clear, c.stand_down = opinion.severity, False, False


class ModelAlone:
    """The model's answer for every post (for `rules eval`'s "model alone" column)."""

    def __init__(self, engine: Engine, model: ModelArtifact, words: int = 0) -> None:
        self.engine = engine
        self.model = model
        self.version = model.version
        self.words = words

    def classify(self, post: Post) -> Classification:
        c = self.engine.classify(post)
        p = self.model.predict(post.text, self.words)
        opinion = ModelOpinion(
            version=self.model.version,
            severity=p.severity,
            probabilities=p.probabilities,
            words=p.words,
            unsure="model alone",
            confidence=0.0,
            rules_severity=c.severity,
            decided=True,
        )
        overrule(c, opinion)
        c.model = opinion
        return c
