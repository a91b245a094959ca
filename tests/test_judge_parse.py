"""Verdict parsing: official rules, strict mode, and fuzzing (the parser never raises)."""
import random
import string

import pytest

from longrm_utils.judge import parse
from longrm_utils.judge.parse import OFFICIAL, STRICT, parse_pairwise, parse_ranking, parse_score, rank_by_scores


@pytest.mark.parametrize("text,ranking,error", [
    ("I think [[A]]", [0, 1], None),
    ("Verdict: [[B]]", [1, 0], None),
    ("[[B]] ... on reflection [[A]]", [0, 1], None),  # official: A is checked first
    ("A is better", None, "no_verdict"),
    ("[A]", None, "no_verdict"),
    ("[[a]]", None, "no_verdict"),
    ("", None, "no_verdict"),
])
def test_pairwise_official(text, ranking, error):
    p = parse_pairwise(text, OFFICIAL)
    assert (p.ranking, p.error) == (ranking, error)


def test_pairwise_strict_flags_both_verdicts():
    assert parse_pairwise("[[B]] then [[A]]", STRICT).error == "ambiguous_both"
    assert parse_pairwise("[[B]] and again [[B]]", STRICT).ranking == [1, 0]


@pytest.mark.parametrize("text,n,ranking,error", [
    ("[[B>A>C]]", 3, [1, 0, 2], None),
    ("final: [[ C > A > B ]]", 3, [1, 2, 0], None),
    ("[[Assistant B > Assistant A]]", 2, [1, 0], None),
    ("[[assistant: D>C>B>A]]", 4, [3, 2, 1, 0], None),
    ("[[A>B]]", 3, None, "missing_letter"),
    ("[[A>A>B]]", 3, None, "repeated_letter"),
    ("[[A>B>D]]", 3, None, "letter_out_of_range"),
    ("[[AB>C]]", 3, None, "bad_letters"),
    ("[[A]]", 2, None, "no_ranking"),
    ("no ranking here", 3, None, "no_ranking"),
    ("[[B>A]] " + ">" * 9, 2, None, "too_many_arrows"),  # 1 + 9 = 10 arrows
    ("[[B>A]] " + ">" * 8, 2, [1, 0], None),             # 9 arrows is fine
    ("[[x>y]] then [[B>A]]", 2, None, "bad_letters"),     # official takes the FIRST match only
])
def test_ranking_official(text, n, ranking, error):
    p = parse_ranking(text, n, OFFICIAL)
    assert (p.ranking, p.error) == (ranking, error)


def test_ranking_strict_flags_conflicting_rankings():
    assert parse_ranking("[[A>B]] no wait [[B>A]]", 2, OFFICIAL).ranking == [0, 1]
    assert parse_ranking("[[A>B]] no wait [[B>A]]", 2, STRICT).error == "ambiguous_multiple"
    assert parse_ranking("[[A>B]] so [[A > B]]", 2, STRICT).ranking == [0, 1]


def test_score_parsing():
    assert parse_score("[Analysis] ok [Score: 7]") == (7.0, None)
    assert parse_score("[Score: 3] then [score: 8.5]") == (8.5, None)
    assert parse_score("[Score: 3] then [Score: 8]", STRICT) == (None, "ambiguous_multiple")
    assert parse_score("[Score: 12]", STRICT) == (None, "score_out_of_range")
    assert parse_score("Score 7") == (None, "no_score")


def test_rank_by_scores_and_ties():
    assert rank_by_scores([0.1, 0.9, 0.5]) == [2, 0, 1]
    assert rank_by_scores([5, 5]) == [0, 1]  # ties go to the earlier slot
    assert parse.has_tie([5, 5]) and not parse.has_tie([5, 4])


ADVERSARIAL = [None, 3, 2.5, b"[[A]]", ["[[A]]"], {"x": 1}, "\x00" * 50, "[[" * 1000, "]]" * 1000,
               ">" * 100000, "[[" + ">" * 9 + "]]", "[[>]]", "[[ > ]]", "[[A>]]", "[[>A]]", "[[A>>B]]",
               "[[\u0410>B]]", "[[A\u200b>B]]", "[[A>B]" * 500, "[Score: -]", "[Score: 1e99]",
               "[[A>B>C>D>E]]", "🙂[[B]]🙂", "[[A]" + "]" * 3]


def _check(p, n):
    assert isinstance(p, parse.Parsed)
    if p.ranking is None:
        assert isinstance(p.error, str) and p.error
    else:
        assert p.error is None and sorted(p.ranking) == list(range(n))


@pytest.mark.parametrize("mode", [OFFICIAL, STRICT])
def test_fuzz_never_raises(mode):
    rng = random.Random(1234)
    alphabet = string.printable + "[]>[[]]ABCD" * 5 + "\u00e9\u4e2d\U0001f600"
    texts = list(ADVERSARIAL)
    pieces = ["[[A]]", "[[B]]", "[[A>B]]", "[[C>B>A]]", "Assistant", ":", " ", ">", "[[", "]]", "D", "\n"]
    for _ in range(3000):
        if rng.random() < 0.5:
            texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))))
        else:
            texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))))
    for t in texts:
        _check(parse_pairwise(t, mode), 2)
        for n in (2, 3, 4):
            _check(parse_ranking(t, n, mode), n)
        s, e = parse_score(t, mode)
        assert (s is None) != (e is None)
    for bad_n in (0, 1, 5, "3", None):
        assert parse_ranking("[[A>B]]", bad_n).error == "bad_n"


def test_strict_never_accepts_what_official_refuses():
    rng = random.Random(7)
    pieces = ["[[A]]", "[[B]]", "[[A>B]]", "[[B>A]]", "[[A>B>C]]", "x", ">"]
    for _ in range(2000):
        t = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        for n in (2, 3):
            if parse_ranking(t, n, STRICT).ranking is not None:
                assert parse_ranking(t, n, STRICT).ranking == parse_ranking(t, n, OFFICIAL).ranking
        if parse_pairwise(t, STRICT).ranking is not None:
            assert parse_pairwise(t, STRICT).ranking == parse_pairwise(t, OFFICIAL).ranking
