"""What the severity model sees in a post: words, word pairs and the letters inside words.

A word or a pair counts once however often it is said; pairs catch "not down", "all clear",
"went flat". Each distinct word also brings its letter groups (3 and 4 letters, with the word's
edges), which catch spellings, inflections and the slips of non-native writers ("peoples",
"catched"); a letter group shared by two words counts twice. Features are scaled by one over the
square root of how many the model knows, in training and in classification alike.

The letters of a word are the same in every post, so the model adds up a word's weights once and
keeps the sum (see ModelArtifact): classifying costs a lookup per word and one per pair.
"""

import re
from collections import Counter

_TOKEN = re.compile(r"\w+|[^\w\s]")  # words, and single marks: "?", "!", an emoji

WORD, PAIR, CHARS = "w ", "p ", "c "
START = "^"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def letter_groups(word: str) -> list[str]:
    """3- and 4-letter groups of a word made of letters, each once; others have none."""
    if not word.isalpha():
        return []
    padded = f"<{word}>"
    out = {padded[i : i + 3] for i in range(len(padded) - 2)}
    out.update(padded[i : i + 4] for i in range(len(padded) - 3))
    return sorted(out)


def pairs(toks: list[str]) -> set[str]:
    return {f"{PAIR}{a} {b}" for a, b in zip([START, *toks], toks, strict=False)}


def features(text: str) -> Counter[str]:
    """Every feature of a post with how often it counts."""
    toks = tokens(text)
    out: Counter[str] = Counter()
    for t in set(toks):
        out[WORD + t] += 1
        for g in letter_groups(t):
            out[CHARS + g] += 1
    for p in pairs(toks):
        out[p] += 1
    return out


def readable(feature: str) -> str:
    """How a feature is shown to a person: `flat`, `went flat`, `letters '<peo'`."""
    kind, body = feature[:2], feature[2:]
    if kind == CHARS:
        return f"letters '{body}'"
    if kind == PAIR:
        return body.replace(START + " ", "(start) ")
    return body
