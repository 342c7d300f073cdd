"""The request rules (greed_kernel/frontends/rules.py), and the schema stating the same."""

from __future__ import annotations

import keyword

import pytest
from jsonschema import Draft202012Validator
from protocol_schema import SCHEMA

from greed_kernel.frontends import rules

NAME = SCHEMA["$defs"]["Name"]
NAMES = SCHEMA["$defs"]["NamesParams"]["properties"]["names"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("x", True),
        ("_private", True),
        ("été", True),
        ("match", True),  # a soft keyword is a valid variable name
        ("x" * rules.MAX_NAME_LEN, True),
        ("x" * (rules.MAX_NAME_LEN + 1), False),
        ("class", False),
        ("None", False),
        ("1x", False),
        ("a-b", False),
        ("", False),
        (3, False),
        (None, False),
    ],
)
def test_a_name_is_an_identifier_that_is_no_keyword(value: object, ok: bool) -> None:
    assert rules.is_name(value) is ok
    # the schema's Name agrees, value by value
    assert Draft202012Validator(NAME).is_valid(value) is ok


def test_the_schema_states_the_same_limits_and_keywords() -> None:
    assert NAME["maxLength"] == rules.MAX_NAME_LEN
    assert NAMES["maxItems"] == rules.MAX_REQUEST_NAMES
    assert NAMES["minItems"] == 1
    assert sorted(NAME["not"]["enum"]) == sorted(keyword.kwlist)


def test_check_names() -> None:
    assert rules.check_names(["a", "b"]) == ["a", "b"]
    for bad, message in [
        ([], "'names' must be a non-empty list of variable names"),
        ("a", "'names' must be a non-empty list of variable names"),
        (["a"] * (rules.MAX_REQUEST_NAMES + 1), f"at most {rules.MAX_REQUEST_NAMES} names"),
        (["a", "for"], "not a variable name: 'for'"),
        (["y" * 500], "not a variable name: '" + "y" * rules.QUOTE + "'"),
    ]:
        with pytest.raises(rules.Refused) as refused:
            rules.check_names(bad)
        assert str(refused.value).startswith(message)


def test_restore_takes_only_paged_out_names() -> None:
    paged = {"w": 10, "v": 5}
    assert rules.restorable(paged, None) == ["w", "v"]
    assert rules.restorable(paged, ["v"]) == ["v"]
    assert rules.restorable({}, None) == []
    with pytest.raises(rules.Refused) as refused:
        rules.restorable(paged, ["w", "x", "y"])
    assert str(refused.value) == "not paged out: x, y"
    many = [f"n{i}" for i in range(rules.LISTED + 3)]
    with pytest.raises(rules.Refused) as refused:
        rules.restorable(paged, many)
    assert str(refused.value).endswith(", n9 and 3 more")
