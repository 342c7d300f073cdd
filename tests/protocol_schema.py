"""Check ``greed`` comm messages against greed_kernel/frontends/protocol.schema.json (jsonschema).

``check_message`` validates any one message (request, response or notification);
``check_params``, ``check_result`` and ``check_event`` validate a method's params and
result and an event's params. Each raises ``jsonschema.ValidationError`` with the
path of what does not fit.
"""

from __future__ import annotations

import functools
import typing as t

from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from greed_kernel.frontends import protocol

SCHEMA = protocol.schema()
ID = SCHEMA["$id"]
REGISTRY: Registry = Registry().with_resource(ID, Resource.from_contents(SCHEMA))


@functools.cache
def validator(pointer: str = "") -> Draft202012Validator:
    """A validator for the schema at *pointer* (a JSON pointer into the document)."""
    return Draft202012Validator({"$ref": f"{ID}#{pointer}"}, registry=REGISTRY)


def check_message(data: t.Any) -> None:
    validator("").validate(data)


def check_params(method: str, params: t.Any) -> None:
    validator(f"/methods/{method}/params").validate(params)


def params_valid(method: str, params: t.Any) -> bool:
    return validator(f"/methods/{method}/params").is_valid(params)


def check_result(method: str, value: t.Any) -> None:
    validator(f"/methods/{method}/result").validate(value)


def check_event(method: str, params: t.Any) -> None:
    assert method in SCHEMA["events"], f"{method!r} is not an event of the schema"
    validator(f"/events/{method}/params").validate(params)


def check_response(method: str, response: dict[str, t.Any]) -> None:
    """A response to *method*: the envelope, and the result against the method's."""
    check_message(response)
    if "result" in response:
        check_result(method, response["result"])


def event_params(event: dict[str, t.Any]) -> dict[str, t.Any]:
    """GreedClient's flattened event (``{"event": method, **params}``) as its params."""
    return {k: v for k, v in event.items() if k != "event"}


# -- what the kernel answers to any message ------------------------------------------------

RESULT = "result"


def is_request(data: t.Any) -> bool:
    """A JSON-RPC 2.0 request (or notification) as the kernel reads it."""
    return (
        isinstance(data, dict)
        and data.get("jsonrpc") == "2.0"
        and isinstance(data.get("method"), str)
        and set(data) <= {"jsonrpc", "id", "method", "params"}
        and protocol.is_id(data.get("id"))
    )


def expected_answer(data: t.Any, paged: t.Collection[str] | None) -> str | int | None:
    """What the kernel answers to *data*: None (nothing: a notification), RESULT, or an
    error code. *paged*: the names paged out (None: unknown, then a restore of names is
    answered RESULT or INVALID_PARAMS, returned as the tuple of both)."""
    if not is_request(data):
        return protocol.INVALID_REQUEST
    if "id" not in data:
        return None
    method, params = data["method"], data.get("params", {})
    if method not in SCHEMA["methods"]:
        return protocol.METHOD_NOT_FOUND
    if not params_valid(method, params):
        return protocol.INVALID_PARAMS
    if method == "restore" and "names" in params and not set(params["names"]) <= set(paged or ()):
        return protocol.INVALID_PARAMS if paged is not None else "either"
    return RESULT


def check_answer(data: t.Any, response: dict[str, t.Any], paged: t.Collection[str] | None) -> None:
    """*response* is what the kernel owes *data*, and fits the schema."""
    check_message(response)
    expected = expected_answer(data, paged)
    assert expected is not None, f"a notification was answered: {response}"
    if "result" in response:
        assert expected in (RESULT, "either"), (repr(data)[:300], response)
        check_result(data["method"], response["result"])
        return
    error = response["error"]
    if expected == "either":
        expected = protocol.INVALID_PARAMS
    assert error["code"] == expected, (repr(data)[:300], response)
    assert error["message"] and len(error["message"]) < 300  # a long request is not echoed
    readable = isinstance(data, dict) and protocol.is_id(data.get("id"))
    assert response["id"] == (data.get("id") if readable else None)


# -- any message, for hypothesis ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
huge = st.integers(1, 200_000).map(lambda n: "x" * n)
names = (
    st.text(alphabet="ab_1 é٣.", max_size=4) | st.sampled_from(["w", "v", "x", "in", "None"]) | huge
)
params = st.one_of(
    st.none(),
    json_values,
    st.just({}),
    st.fixed_dictionaries({"names": st.lists(names, max_size=3)}),
    st.fixed_dictionaries({"names": st.lists(names | json_values, max_size=3)}),
    st.just({"names": [f"zz_{i}" for i in range(1001)]}),  # too many
    st.fixed_dictionaries({"all": json_values}),
    st.fixed_dictionaries({"all": st.just(True)}, optional={"names": st.just(["w"])}),
)
methods = st.sampled_from([*SCHEMA["methods"], "hello", "", "STATS", "_stats"]) | huge
#: Requests, notifications and near misses, with one or two members dropped.
requests = st.builds(
    lambda jsonrpc, id, method, params, drop: {
        k: v
        for k, v in {"jsonrpc": jsonrpc, "id": id, "method": method, "params": params}.items()
        if k not in drop
    },
    st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2.0]),
    st.one_of(st.integers(), st.text(max_size=5), st.none(), json_values),
    methods,
    params,
    st.sets(st.sampled_from(["jsonrpc", "id", "method", "params"]), max_size=2),
)
any_message = (
    requests
    | json_values
    | st.builds(lambda r, k, v: {**r, k: v}, requests, st.text(max_size=5), json_values)
)
