"""The rules engine, pure: how cues, modifiers, scopes, ignore, trust and scores decide."""

import pytest

from services.classify.rules import Engine, load_rules, rules_version
from shared.models import Post
from shared.severity import Severity

RULES = """
cues:
  - id: leak
    severity: red_alert
    weight: 2
    phrases: [leak, "coolant leak", "tornado"]
  - id: caution
    severity: assessing
    phrases: [alarm, "tornado watch", "storm warning"]
  - id: magnitude
    severity: red_alert
    weight: 1
    regex: ['\\bM[6-9]\\.\\d\\b']
modifiers:
  - id: negation
    kind: negation
    phrases: [not, "no"]
    scope: {direction: forward, words: 3, until: clause}
  - id: drill
    kind: negation
    phrases: [drill]
    scope: {direction: both, until: post}
  - id: past
    kind: history
    phrases: ["last year"]
    scope: {direction: both, words: 4, until: clause}
  - id: hedge
    kind: uncertainty
    weight: 0
    phrases: [possible, unconfirmed]
    scope: {direction: both, words: 3, until: clause}
  - id: looking
    kind: uncertainty
    weight: 1
    phrases: ["still assessing"]
    scope: {direction: both, until: clause}
  - id: question
    kind: uncertainty
    weight: 0
    regex: ['\\?']
    scope: {direction: backward, until: sentence}
  - id: rumour
    kind: uncertainty
    weight: 1
    needs_subject: true
    phrases: ["reports of", "might be"]
    scope: {direction: forward, until: sentence}
  - id: reassurance
    kind: all_clear
    weight: 1.5
    phrases: ["no danger", contained, "is safe"]
    scope: {direction: both, until: clause}
  - id: ended
    kind: stand_down
    weight: 2
    phrases: ["all clear"]
    regex: ['\\b(?:storm\\s+)?warning\\s+(?:was\\s+)?cancelled\\b']
    scope: {direction: both, until: clause}
ignore:
  phrases: ["leak test"]
topics:
  iss: [ISS, "space station"]
  weather: [tornado, storm]
trust:
  default: 1.0
  authors: {nasa: 2.0}
  sources: {rumours: 0.5}
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules(RULES))


def classify(engine: Engine, text: str, **post: str):
    return engine.classify(Post(text=text, **post))


def fired(c) -> list[tuple[str, str, str]]:
    return [(h.rule, h.text, h.effect) for h in c.hits]


def test_a_red_alert_cue_alone_is_a_red_alert_and_nothing_is_no_danger(engine):
    assert classify(engine, "There's a leak in the radiator").severity is Severity.RED_ALERT
    assert classify(engine, "Quiet day on the station").severity is Severity.NO_DANGER
    assert classify(engine, "An alarm went off").severity is Severity.ASSESSING


def test_every_hit_has_its_words_and_offsets(engine):
    text = "ISS: a coolant leak, not the alarm"
    c = classify(engine, text)
    assert [(h.rule, h.kind, h.start, h.end, h.effect, h.by) for h in c.hits] == [
        ("leak", "cue", 7, 19, "counted", None),
        ("negation", "negation", 21, 24, "counted", None),
        ("caution", "cue", 29, 34, "negated", "negation"),
    ]
    assert all(text[h.start : h.end] == h.text for h in c.hits)
    assert c.hits[0].severity is Severity.RED_ALERT
    assert c.hits[0].weight == 2


def test_the_longest_phrase_wins_where_two_overlap(engine):
    c = classify(engine, "Tornado watch for the county")
    assert fired(c) == [("caution", "Tornado watch", "counted")]
    assert c.severity is Severity.ASSESSING


def test_negation_cancels_cues_in_its_scope_only(engine):
    assert classify(engine, "The crew sees no leak").severity is Severity.NO_DANGER
    # Beyond three words, or after the end of the clause, the cue counts again.
    assert classify(engine, "No photos of the big leak").severity is Severity.RED_ALERT
    assert classify(engine, "Not now; a leak!").severity is Severity.RED_ALERT


def test_negation_of_an_all_clear_keeps_the_danger(engine):
    c = classify(engine, "The leak is not contained")
    assert ("reassurance", "contained", "negated") in fired(c)
    assert c.severity is Severity.RED_ALERT
    assert not c.all_clear


def test_history_cancels_past_events_both_ways_within_its_scope(engine):
    assert classify(engine, "Last year a leak hit the station").severity is Severity.NO_DANGER
    assert classify(engine, "a leak last year").severity is Severity.NO_DANGER
    c = classify(engine, "Last year was calm, but today a leak")
    assert c.severity is Severity.RED_ALERT


def test_a_point_or_colon_inside_a_word_ends_no_clause(engine):
    # "M6.4", "10:17", "example.com": the hedge reaches the leak across them.
    assert classify(engine, "Possible M6.4 leak").severity is Severity.ASSESSING
    assert classify(engine, "Possible 10:17 leak").severity is Severity.ASSESSING
    assert classify(engine, "unconfirmed example.com leak").severity is Severity.ASSESSING
    # A point or colon followed by a space still ends the clause.
    assert classify(engine, "Possible. A leak").severity is Severity.RED_ALERT
    assert classify(engine, "Possible: a leak").severity is Severity.RED_ALERT


def test_a_rules_regexes_are_tried_in_file_order():
    rules = """
cues:
  - id: leak
    severity: red_alert
    weight: 2
    regex: ['leak\\w*', 'leak']
  - id: alarm
    severity: assessing
    regex: ['alarm', 'alarm\\w*']
"""
    c = Engine(load_rules(rules)).classify(Post(text="leaking alarms"))
    assert fired(c) == [("leak", "leaking", "counted"), ("alarm", "alarm", "counted")]


def test_uncertainty_turns_a_red_alert_into_assessing(engine):
    c = classify(engine, "Possible leak on the Progress")
    assert ("leak", "leak", "hedged") in fired(c)
    assert c.severity is Severity.ASSESSING
    assert c.scores == {"red_alert": 0.0, "assessing": 2.0, "no_danger": 0.0}


def test_a_question_hedges_its_own_sentence(engine):
    assert classify(engine, "Was that a leak?").severity is Severity.ASSESSING
    assert classify(engine, "Any news? A leak in Node 1.").severity is Severity.RED_ALERT


def test_a_hedge_disarms_the_negation_it_speaks_about(engine):
    # "not sure if it's a drill": the drill is itself in doubt, so the leak is not cancelled.
    c = classify(engine, "Leak in Node 1, the crew say possible drill")
    assert ("drill", "drill", "hedged") in fired(c)
    assert ("leak", "Leak", "counted") in fired(c)
    assert c.severity is Severity.RED_ALERT
    # Out of the hedge's reach (another clause), the drill cancels everything.
    c = classify(engine, "A possible leak. This is a drill")
    assert c.severity is Severity.NO_DANGER


def test_negation_and_history_cancel_a_weighted_hedge(engine):
    assert classify(engine, "still assessing").severity is Severity.ASSESSING
    c = classify(engine, "Drill: we are still assessing")
    assert ("looking", "still assessing", "negated") in fired(c)
    assert c.severity is Severity.NO_DANGER
    c = classify(engine, "Last year still assessing")
    assert ("looking", "still assessing", "historical") in fired(c)
    assert c.severity is Severity.NO_DANGER


def test_a_hedge_that_needs_a_subject_weighs_only_in_a_post_about_something(engine):
    # A topic word is enough of a subject: the rules need no word for what might be wrong.
    c = classify(engine, "The ISS might be tumbling")
    assert c.severity is Severity.ASSESSING
    assert c.scores["assessing"] == 1.0
    assert classify(engine, "Reports of an alarm near Houston").scores["assessing"] == 2.0
    # About nothing the rules know: the hedge is shown, with no weight.
    c = classify(engine, "I might be late tomorrow")
    assert c.severity is Severity.NO_DANGER
    assert [(h.rule, h.weight) for h in c.hits] == [("rumour", 0.0)]


def test_uncertainty_with_a_weight_counts_on_its_own(engine):
    c = classify(engine, "We're still assessing with Moscow")
    assert c.severity is Severity.ASSESSING
    assert c.scores["assessing"] == 1.0


def test_an_all_clear_cancels_the_danger_it_speaks_about(engine):
    c = classify(engine, "The coolant leak is contained")
    assert ("leak", "coolant leak", "negated") in fired(c)
    assert c.severity is Severity.NO_DANGER
    assert c.all_clear
    assert not c.stand_down


def test_reassurance_while_people_are_still_looking_is_not_an_all_clear(engine):
    # The seed's "Right now there are no impacts, still working to understand this one".
    c = classify(engine, "There is no danger, we're still assessing, still assessing")
    assert c.severity is Severity.ASSESSING
    assert ("looking", "still assessing", "counted") in fired(c)


def test_remaining_danger_wins_a_tie_with_an_all_clear(engine):
    # 2 (leak, in another clause) against 1.5: still a red alert.
    assert classify(engine, "A leak; the crew is safe").severity is Severity.RED_ALERT
    # A trusted author's all-clear weighs twice as much.
    c = classify(engine, "A leak; the crew is safe", author="NASA")
    assert c.trust == 2.0
    assert c.severity is Severity.NO_DANGER
    assert c.all_clear


def test_a_stand_down_resolves_and_its_regex_takes_in_the_hazard(engine):
    c = classify(engine, "The storm warning was cancelled")
    assert fired(c) == [("ended", "storm warning was cancelled", "counted")]
    assert c.severity is Severity.NO_DANGER
    assert c.all_clear
    assert c.stand_down


def test_a_negated_stand_down_is_not_one(engine):
    c = classify(engine, "No all clear yet: the leak goes on")
    assert c.severity is Severity.RED_ALERT
    assert not c.stand_down


def test_drills_cancel_everything_in_the_post(engine):
    c = classify(engine, "Leak drill today. The alarm will sound at ten.")
    assert c.severity is Severity.NO_DANGER
    assert {e for _, _, e in fired(c) if _ != "drill"} == {"negated"}


def test_an_ignored_phrase_hides_the_cue_inside_it(engine):
    c = classify(engine, "Leak test passed")
    assert fired(c) == [("ignore", "Leak test", "ignored")]
    assert c.severity is Severity.NO_DANGER


def test_regex_cues_and_thresholds(engine):
    # One weight-1 red cue is below the red-alert threshold but reaches assessing.
    assert classify(engine, "M6.4 off the coast").severity is Severity.ASSESSING
    assert classify(engine, "M6.4 and a leak").scores["red_alert"] == 3.0


def test_topics_never_hide_a_cue(engine):
    c = classify(engine, "Tornado near the space station")
    assert c.topics == ["iss", "weather"]
    assert c.severity is Severity.RED_ALERT


def test_trust_by_source_and_author(engine):
    assert classify(engine, "x", source="rumours").trust == 0.5
    assert classify(engine, "x", source="rumours", author="@nasa").trust == 2.0
    assert classify(engine, "x").trust == 1.0


def test_a_post_with_its_own_severity_keeps_it(engine):
    c = engine.classify(Post(text="all clear", severity=Severity.RED_ALERT))
    assert c.severity is Severity.RED_ALERT
    assert not c.all_clear


def test_phrases_match_across_hyphens_and_case_but_only_whole_words(engine):
    assert classify(engine, "COOLANT-LEAK!").hits[0].text == "COOLANT-LEAK"
    assert classify(engine, "leaky faucet").severity is Severity.NO_DANGER
    assert classify(engine, "No-danger zone").severity is Severity.NO_DANGER


def test_the_version_is_a_digest_of_what_the_rules_say():
    same = load_rules(RULES + "\n# a comment changes nothing\n")
    other = load_rules(RULES.replace("weight: 1.5", "weight: 1.25"))
    assert rules_version(load_rules(RULES)) == rules_version(same)
    assert rules_version(other) != rules_version(same)
    c = Engine(same).classify(Post(text="leak"))
    assert c.rules_version == rules_version(same)


def test_empty_rules_give_the_default():
    engine = Engine(load_rules("default_severity: assessing\n"))
    c = engine.classify(Post(text="anything"))
    assert c.severity is Severity.ASSESSING
    assert c.hits == []
