"""The protocol schema (greed_kernel/frontends/protocol.schema.json) itself, and the comm's
page (docs/protocol.md) against it: every method, event and error code in one is in the other."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from protocol_schema import REGISTRY, SCHEMA, validator

from greed_kernel.frontends import protocol

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "protocol.md"
TITLE = "# The `greed` comm: JSON-RPC 2.0 for frontends"


def test_the_schema_is_valid_and_ships_in_the_package() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert protocol.schema() is protocol.schema()
    assert (REPO / "greed_kernel" / "frontends" / protocol.SCHEMA_FILE).is_file()
    resolver = REGISTRY.resolver(SCHEMA["$id"])
    for ref in refs(SCHEMA):  # every $ref resolves
        resolver.lookup(ref)


def refs(node: t.Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_methods_events_and_codes() -> None:
    assert protocol.methods() == list(SCHEMA["methods"])
    assert protocol.events() == list(SCHEMA["events"])
    codes = {c["title"]: c["const"] for c in SCHEMA["$defs"]["ErrorCode"]["oneOf"]}
    assert codes == {name: getattr(protocol, name) for name in codes}
    for spec in [*SCHEMA["methods"].values(), *SCHEMA["events"].values()]:
        assert spec["description"]


@pytest.mark.parametrize(
    "message",
    [
        protocol.request("a", "stats"),
        protocol.request(1, "preserve", {"names": ["x"]}),
        protocol.result("a", None),
        protocol.error(None, protocol.INVALID_REQUEST, "bad"),
        protocol.notification("memory:pressure", {}),
    ],
)
def test_the_builders_write_valid_messages(message: dict[str, t.Any]) -> None:
    validator("").validate(message)


def test_message_kinds() -> None:
    assert protocol.is_response(protocol.result(1, None))
    assert protocol.is_response(protocol.error(None, -32600, "x"))
    assert not protocol.is_response(protocol.request(1, "stats"))
    assert protocol.is_notification(protocol.notification("hello", {}))
    assert not protocol.is_notification(protocol.request(1, "stats"))
    assert [protocol.is_id(v) for v in ("a", 0, None, True, 1.0, [])] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


# -- docs/protocol.md ---------------------------------------------------------------------


def page() -> str:
    text = PAGE.read_text(encoding="utf-8")
    assert text.startswith(TITLE + "\n"), f"{PAGE.name} does not start with {TITLE!r}"
    return text


def table(section: str, header: str) -> dict[str, list[str]]:
    """The rows of the table whose first header cell is *header*: first cell -> cells."""
    lines = section.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"| {header} |")]
    assert len(starts) == 1, f"{len(starts)} tables headed {header!r}"
    start = starts[0]
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def properties(schema: dict[str, t.Any]) -> set[str]:
    """The property names of an object schema (of each alternative, for a oneOf)."""
    if "$ref" in schema:
        return properties(SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    names = set(schema.get("properties", {}))
    for alternative in schema.get("oneOf", []):
        names |= properties(alternative)
    return names


def test_the_page_lists_every_method_with_its_params() -> None:
    rows = table(page(), "Method")
    assert list(rows) == list(SCHEMA["methods"])
    for method, (params, _result) in rows.items():
        wanted = properties(SCHEMA["methods"][method]["params"])
        if not wanted:
            assert params == "none", method
        for name in wanted:
            assert f"`{name}" in params, f"{method}: the page says {params!r}, without {name}"


def test_the_page_lists_every_event_with_its_params() -> None:
    rows = table(page(), "Event")
    assert list(rows) == list(SCHEMA["events"])
    for event, (_when, params) in rows.items():
        for name in properties(SCHEMA["events"][event]["params"]):
            assert f"`{name}`" in params, f"{event}: the page says {params!r}, without {name}"


def test_the_page_lists_every_error_code() -> None:
    rows = table(page(), "Error code")
    codes = [c["const"] for c in SCHEMA["$defs"]["ErrorCode"]["oneOf"]]
    assert sorted(int(code) for code in rows) == sorted(codes)


@pytest.mark.parametrize(
    "definition", ["Stats", "CleanupReport", "OptimizeReport", "OomReport", "Variable"]
)
def test_the_page_names_every_field(definition: str) -> None:
    text = page()
    section = text.split("\n## STATS and REPORT\n", 1)[1].split("\n## ", 1)[0]
    fields = [f for f in SCHEMA["$defs"][definition]["properties"] if not f.endswith("Omitted")]
    missing = [f for f in fields if f"`{f}`" not in section]
    assert missing == [], f"docs/protocol.md's STATS and REPORT lacks {definition} {missing}"
