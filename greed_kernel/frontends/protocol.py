"""The ``greed`` comm's messages: JSON-RPC 2.0, as ``protocol.schema.json`` describes them.

The frontend sends requests ``{"jsonrpc": "2.0", "id", "method", "params"}``; the kernel
answers each on the comm that sent it, with the same ``id``, as ``{"result"}`` or
``{"error": {"code", "message"}}``. Events go to every open comm as notifications
``{"jsonrpc": "2.0", "method", "params"}`` (no ``id``). The schema file next to this
module lists every method with its params and result, and every event with its params;
the tests validate real messages against it, and the extension's TypeScript types are
generated from it.

This module imports no kernel code: the client uses it too.
"""

from __future__ import annotations

import functools
import json
import typing as t
from importlib import resources

TARGET = "greed"
JSONRPC = "2.0"
SCHEMA_FILE = "protocol.schema.json"

# Error codes: JSON-RPC's own, and one of ours (the server range is -32000 to -32099).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
OPERATION_FAILED = -32000

#: Id types a request may carry (bool is an int in Python, but not in JSON).
Id = str | int | None


class RpcError(Exception):
    """An error answer: its code and one-sentence message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_id(value: object) -> bool:
    """Whether *value* can be a request id: a string, an integer or null."""
    return value is None or isinstance(value, str) or (type(value) is int)


def request(id: Id, method: str, params: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """A request message (params omitted when None)."""
    message: dict[str, t.Any] = {"jsonrpc": JSONRPC, "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def result(id: Id, value: t.Any) -> dict[str, t.Any]:
    """A successful response."""
    return {"jsonrpc": JSONRPC, "id": id, "result": value}


def error(id: Id, code: int, message: str) -> dict[str, t.Any]:
    """An error response."""
    return {"jsonrpc": JSONRPC, "id": id, "error": {"code": code, "message": message}}


def notification(method: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """An event for every open comm."""
    return {"jsonrpc": JSONRPC, "method": method, "params": params}


def is_response(data: object) -> bool:
    """A result or error response (to be matched to its request by ``id``)."""
    return (
        isinstance(data, dict)
        and "id" in data
        and "method" not in data
        and ("result" in data or "error" in data)
    )


def is_notification(data: object) -> bool:
    """An event: a method and no id."""
    return isinstance(data, dict) and isinstance(data.get("method"), str) and "id" not in data


@functools.cache
def schema() -> dict[str, t.Any]:
    """The protocol schema (a JSON Schema document with ``methods`` and ``events``)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return t.cast(dict[str, t.Any], json.loads(text))


def methods() -> list[str]:
    """Every request method, in the schema's order."""
    return list(schema()["methods"])


def events() -> list[str]:
    """Every event (notification) name, in the schema's order."""
    return list(schema()["events"])
