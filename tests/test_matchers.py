"""Labels and Alertmanager-syntax matchers, without Redis: parsing, matching, errors, bounds."""

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from services.classify.incidents import apply_post
from shared import labels
from shared.labels import Labels
from shared.matchers import (
    MatcherError,
    MatcherList,
    MatchType,
    first_mismatch,
    matches,
    parse,
    parse_all,
    split_list,
)
from shared.models import Classification, Hit, Post
from shared.severity import Severity

DB = {"team": "db", "service": "api", "env": "prod"}


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "mtype", "value"),
    [
        ('team="db"', "team", MatchType.EQUAL, "db"),
        ('team!="db"', "team", MatchType.NOT_EQUAL, "db"),
        ('service=~"api|web"', "service", MatchType.REGEX, "api|web"),
        ('service!~"batch.*"', "service", MatchType.NOT_REGEX, "batch.*"),
        ("team=db", "team", MatchType.EQUAL, "db"),  # bare values, as Alertmanager allows
        ('  team = "db"  ', "team", MatchType.EQUAL, "db"),
        ('env=""', "env", MatchType.EQUAL, ""),
        ('msg="say \\"hi\\""', "msg", MatchType.EQUAL, 'say "hi"'),
        ('path="a\\\\b"', "path", MatchType.EQUAL, "a\\b"),
        ('host=~"db\\.prod"', "host", MatchType.REGEX, "db\\.prod"),  # spurious escape kept
        ('note="a,b}"', "note", MatchType.EQUAL, "a,b}"),
        ('app.kubernetes.io/name="x"', "app.kubernetes.io/name", MatchType.EQUAL, "x"),
    ],
)
def test_parses_alertmanager_syntax(text, name, mtype, value):
    m = parse(text)
    assert (m.name, m.type, m.value) == (name, mtype, value)
    assert parse(str(m)) == m  # the canonical form reads back the same


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('team=="db"', "'==' is not an operator"),
        ('team~="db"', "comes an operator"),
        ('"team"="db"', "a label name first"),
        ('1team="db"', "a label name first"),
        ('team="db', "quote is not closed"),
        ('team="db" extra', "unexpected 'extra' after the value"),
        ('service=~"(api"', "bad regex '(api'"),
        ("", "empty"),
        ("team", "comes an operator"),
        ('team=d"b', "cannot hold quotes"),
    ],
)
def test_a_bad_matcher_is_named_with_what_is_wrong(text, why):
    with pytest.raises(MatcherError) as e:
        parse(text)
    assert f"matcher {text.strip()!r}" in str(e.value)
    assert why in str(e.value)


def test_lists_split_on_commas_outside_quotes_and_braces_are_optional():
    assert split_list('{team="db", service=~"api|web,x"}') == ['team="db"', 'service=~"api|web,x"']
    assert split_list('team="db",env!="dev",') == ['team="db"', 'env!="dev"']
    assert [str(m) for m in parse_all('{team="db"}')] == ['team="db"']
    with pytest.raises(MatcherError, match="closing"):
        split_list('{team="db"')
    with pytest.raises(MatcherError, match="not closed"):
        split_list('team="db, env="x"')
    with pytest.raises(MatcherError, match="at most 32"):
        parse_all([f'l{i}="x"' for i in range(33)])


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('team="db"', True),
        ('team="DB"', False),  # values are case-sensitive, as in Alertmanager
        ('team!="db"', False),
        ('team!="web"', True),
        ('service=~"api|web"', True),
        ('service=~"ap"', False),  # anchored: no partial match
        ('service=~"a.*"', True),
        ('service!~"api|web"', False),
        ('service!~"batch.*"', True),
        ('cluster=""', True),  # an absent label is ""
        ('cluster!=""', False),
        ('cluster!="eu"', True),
        ('cluster=~".*"', True),
        ('cluster=~".+"', False),
        ('env!~"dev|staging"', True),
    ],
)
def test_matching_follows_alertmanager(text, expected):
    assert parse(text).matches(DB) is expected


def test_a_list_matches_when_every_matcher_does_and_explains_the_first_that_does_not():
    ms = parse_all(['team="db"', 'service=~"api|web"', 'env!="dev"'])
    assert matches(ms, DB)
    assert matches([], {})  # no matchers: everything
    other = {**DB, "env": "dev"}
    assert not matches(ms, other)
    assert str(first_mismatch(ms, other)) == 'env!="dev"'
    assert first_mismatch(ms, DB) is None


class Spec(BaseModel):
    matchers: MatcherList = []


def test_a_model_field_refuses_a_bad_matcher_naming_it_and_its_index():
    assert Spec(matchers=['team = "db"', "env!=dev"]).matchers == ['team="db"', 'env!="dev"']
    assert Spec.model_validate({"matchers": '{team="db", env!="dev"}'}).matchers == [
        'team="db"',
        'env!="dev"',
    ]
    with pytest.raises(ValidationError) as e:
        Spec(matchers=['team="db"', 'service=~"(api"'])
    err = e.value.errors()[0]
    assert err["loc"] == ("matchers",)
    assert "matchers[1]: matcher 'service=~\"(api\"': bad regex" in err["msg"]


# --- labels ------------------------------------------------------------------------------------


class Labelled(BaseModel):
    labels: Labels = {}


def test_labels_are_checked_with_the_bad_one_named():
    assert Labelled(labels={"team": "db"}).labels == {"team": "db"}
    for bad, why in [
        ({"bad name": "x"}, "label name 'bad name'"),
        ({"9lives": "x"}, "label name '9lives'"),
        ({"": "x"}, "label name '': 1 to 128"),
        ({"team": "x" * 1_025}, "label 'team': value longer than 1024"),
        ({f"l{i}": "x" for i in range(65)}, "65 labels; at most 64"),
    ]:
        with pytest.raises(ValidationError) as e:
            Labelled(labels=bad)
        assert why in str(e.value), why
    with pytest.raises(ValidationError, match="valid string"):
        Labelled(labels={"team": 5})


def test_plain_xadd_labels_are_json_or_name_value_pairs():
    assert Labelled(labels='{"team": "db"}').labels == {"team": "db"}
    assert Labelled(labels="team=db, env=prod").labels == {"team": "db", "env": "prod"}
    assert Labelled(labels="").labels == {}
    with pytest.raises(ValidationError, match="name=value"):
        Labelled(labels="team")
    with pytest.raises(ValidationError, match="not a JSON object"):
        Labelled(labels="{team")


def test_labels_from_other_tools_are_cleaned_not_refused():
    raw = {"team": " db ", "bad name": "x", "empty": "", "none": None, "long": "y" * 2_000, 5: "n"}
    assert labels.clean(raw) == {"team": "db", "long": "y" * 1_024}
    assert len(labels.clean({f"l{i}": "x" for i in range(100)})) == 64


def test_labels_from_the_cli():
    assert labels.parse_pairs(["team=db", "env=prod,service=api"]) == {
        "team": "db",
        "env": "prod",
        "service": "api",
    }
    with pytest.raises(ValueError, match="name=value"):
        labels.parse_pairs(["team"])


def test_an_incident_keeps_the_union_of_its_posts_labels_first_value_wins():
    def alarm(**post_labels: str) -> Classification:
        return Classification(
            post=Post(text="Disk full", source="alertmanager", labels=post_labels),
            severity=Severity.RED_ALERT,
            topics=["db"],
            hits=[Hit(rule="r", kind="cue", text="full", start=5, end=9)],
        )

    now = datetime(2026, 11, 26, 8, tzinfo=UTC)
    opened = apply_post(None, alarm(team="db", env="prod"), new_id="i1", now=now).incident
    assert opened is not None
    assert opened.labels == {"team": "db", "env": "prod"}
    later = apply_post(opened, alarm(env="dev", service="api"), new_id="x", now=now).incident
    assert later is not None
    assert later.labels == {"team": "db", "env": "prod", "service": "api"}
    assert labels.union({f"l{i}": "x" for i in range(64)}, {"more": "y"}).get("more") is None
