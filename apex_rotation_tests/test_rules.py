"""Rule expressions: parsing, canonical printing, Kleene evaluation, Python composition, clear errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_rotation.rules import And, Name, Not, Or, Rule, RuleError, check_known, parse

KNOWN = ("volume_spike", "breakout", "oi_shift", "funding_flip", "funding_hot")
KNOWN_LIST = "breakout, funding_flip, funding_hot, oi_shift, volume_spike"
V, B, OI, F, H = (Name(n) for n in ("volume_spike", "breakout", "oi_shift", "funding_flip", "funding_hot"))


# ---------------------------------------------------------------- parsing and printing


@pytest.mark.parametrize(
    ("text", "tree", "canonical"),
    [
        ("volume_spike and breakout", And((V, B)), "volume_spike AND breakout"),
        (
            "(volume_spike OR oi_shift) AND NOT funding_hot",
            And((Or((V, OI)), Not(H))),
            "(volume_spike OR oi_shift) AND NOT funding_hot",
        ),
        (
            "volume_spike or breakout AND oi_shift",
            Or((V, And((B, OI)))),
            "volume_spike OR breakout AND oi_shift",
        ),
        ("not volume_spike AND breakout", And((Not(V), B)), "NOT volume_spike AND breakout"),
        ("NOT (volume_spike OR breakout)", Not(Or((V, B))), "NOT (volume_spike OR breakout)"),
        ("Not Not Breakout", Not(Not(B)), "NOT NOT breakout"),
        ("((breakout))", B, "breakout"),
        (
            "(volume_spike AND breakout) AND oi_shift",
            And((V, B, OI)),
            "volume_spike AND breakout AND oi_shift",
        ),
        ("volume_spike OR (breakout OR oi_shift)", Or((V, B, OI)), "volume_spike OR breakout OR oi_shift"),
        ("  breakout\tAND\noi_shift ", And((B, OI)), "breakout AND oi_shift"),
    ],
)
def test_parse_builds_the_tree_and_prints_canonically(text: str, tree: Rule, canonical: str) -> None:
    rule = parse(text, KNOWN)
    assert rule == tree
    assert str(rule) == canonical
    assert parse(canonical, KNOWN) == rule


def test_python_composition_matches_parsing() -> None:
    assert parse("volume_spike AND breakout", KNOWN) == V & B
    assert parse("(volume_spike OR oi_shift) AND NOT funding_hot", KNOWN) == (V | OI) & ~H
    assert parse("volume_spike OR oi_shift AND NOT funding_hot", KNOWN) == V | OI & ~H  # & binds tighter
    assert ((V | OI) & ~H).names() == ("volume_spike", "oi_shift", "funding_hot")
    assert (V & B & V).names() == ("volume_spike", "breakout")


def test_rules_refuse_python_truthiness_and_bad_names() -> None:
    with pytest.raises(TypeError, match="combine rules with"):
        bool(V & B)
    with pytest.raises(RuleError, match="invalid filter name 'and'"):
        Name("and")
    with pytest.raises(RuleError, match="invalid filter name 'Volume'"):
        Name("Volume")
    with pytest.raises(RuleError, match=r"unknown filter 'rsi' \(known: breakout,"):
        check_known(V & Name("rsi"), KNOWN)


# ---------------------------------------------------------------- three-valued evaluation

VALUES = (True, False, None)


@pytest.mark.parametrize(
    ("a", "b", "and_", "or_"),
    [
        (True, True, True, True),
        (True, False, False, True),
        (True, None, None, True),
        (False, True, False, True),
        (False, False, False, False),
        (False, None, False, None),
        (None, True, None, True),
        (None, False, False, None),
        (None, None, None, None),
    ],
)
def test_kleene_truth_tables(a: bool | None, b: bool | None, and_: bool | None, or_: bool | None) -> None:
    values = {"volume_spike": a, "breakout": b}
    assert (V & B).evaluate(values) is and_
    assert (V | B).evaluate(values) is or_


def test_not_keeps_unknown_unknown() -> None:
    assert [(~V).evaluate({"volume_spike": v}) for v in VALUES] == [False, True, None]


def test_composite_rule_from_the_issue() -> None:
    rule = parse("(volume_spike OR oi_shift) AND NOT funding_hot", KNOWN)
    table = {
        (True, None, False): True,  # spike alone suffices; OI unknown does not matter
        (False, None, False): None,  # now OI decides, and it is unknown
        (False, True, False): True,
        (True, True, True): False,
        (False, False, None): False,  # already false whatever funding is
        (True, False, None): None,
    }
    for (v, o, h), expected in table.items():
        assert rule.evaluate({"volume_spike": v, "oi_shift": o, "funding_hot": h}) is expected, (v, o, h)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("volume_spike AND breakout)", "unexpected ')' at column 26", 26),
        (
            "volume_spik AND breakout",
            f"unknown filter 'volume_spik' at column 1, did you mean 'volume_spike'? (known: {KNOWN_LIST})",
            1,
        ),
        ("breakout AND rsi", f"unknown filter 'rsi' at column 14 (known: {KNOWN_LIST})", 14),
        ("volume_spike AND", "expected a filter name after AND at column 17", 17),
        ("volume_spike OR )", "expected a filter name after OR at column 17", 17),
        ("NOT", "expected a filter name after NOT at column 4", 4),
        ("()", "expected a filter name after '(' at column 2", 2),
        ("AND breakout", "expected a filter name at column 1", 1),
        ("(volume_spike OR oi_shift AND NOT funding_hot", "unbalanced '(' at column 1: no matching ')'", 1),
        ("volume_spike breakout", "expected AND or OR before 'breakout' at column 14", 14),
        ("(volume_spike breakout)", "expected AND, OR or ')' before 'breakout' at column 15", 15),
        ("volume_spike && breakout", "unexpected character '&' at column 14", 14),
    ],
)
def test_bad_expressions_say_what_and_where(text: str, message: str, column: int) -> None:
    with pytest.raises(RuleError) as info:
        parse(text, KNOWN)
    err = info.value
    assert err.message == message
    assert err.column == column
    assert str(err) == f"{message}\n  {text}\n  {' ' * (column - 1)}^"


def test_caret_points_at_the_offending_token() -> None:
    with pytest.raises(RuleError) as info:
        parse("(volume_spike OR oi_shift)) AND breakout", KNOWN)
    assert str(info.value).splitlines()[1:] == [
        "  (volume_spike OR oi_shift)) AND breakout",
        "                            ^",
    ]


def test_empty_rule() -> None:
    with pytest.raises(RuleError, match="empty rule"):
        parse("   ", KNOWN)


# ---------------------------------------------------------------- properties


def rules() -> st.SearchStrategy[Rule]:
    leaves = st.sampled_from([V, B, OI, F, H])
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(Not),
            st.tuples(inner, inner).map(lambda p: p[0] & p[1]),
            st.tuples(inner, inner).map(lambda p: p[0] | p[1]),
        ),
        max_leaves=8,
    )


@settings(max_examples=150, deadline=None, derandomize=True)
@given(rules())
def test_canonical_text_round_trips(rule: Rule) -> None:
    assert parse(str(rule), KNOWN) == rule


@settings(max_examples=100, deadline=None, derandomize=True)
@given(rules(), st.tuples(*[st.sampled_from(VALUES)] * len(KNOWN)))
def test_a_definite_answer_holds_for_every_completion_of_the_unknowns(
    rule: Rule, given_values: tuple
) -> None:
    values = dict(zip(KNOWN, given_values, strict=True))
    result = rule.evaluate(values)
    if result is None:
        return
    unknown = [k for k, v in values.items() if v is None]
    for fill in itertools.product((True, False), repeat=len(unknown)):
        assert rule.evaluate(values | dict(zip(unknown, fill, strict=True))) is result
