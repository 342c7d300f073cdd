"""greed_kernel.session.identity: which notebook a kernel belongs to, and its key."""

from __future__ import annotations

import re

from greed_kernel.session.identity import identity_key, notebook_identity

CONNECTION = "/run/user/1000/jupyter/runtime/kernel-0b7e9c2a-1f3d-4b7e-9a3c-5d2f1e0a9b8c.json"


def test_the_session_name_of_jupyter_server_comes_first() -> None:
    env = {"JPY_SESSION_NAME": "work/train.ipynb"}
    assert notebook_identity(env, "mine", CONNECTION) == "work/train.ipynb"


def test_then_the_session_name_trait() -> None:
    assert notebook_identity({"JPY_SESSION_NAME": ""}, "mine", CONNECTION) == "mine"


def test_then_the_kernel_id_of_the_connection_file() -> None:
    expected = "0b7e9c2a-1f3d-4b7e-9a3c-5d2f1e0a9b8c"
    assert notebook_identity({}, "", CONNECTION) == expected


def test_none_when_nothing_says() -> None:
    assert notebook_identity({}, "", "") is None
    assert notebook_identity({}, "", "/tmp/connection.json") is None
    assert notebook_identity({}, "", "/tmp/kernel-../x.json") is None
    assert notebook_identity({}, "", "/tmp/kernel-.json") is None


def test_the_key_is_short_stable_hex_and_tells_notebooks_apart() -> None:
    key = identity_key("work/train.ipynb")
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == identity_key("work/train.ipynb")
    assert key != identity_key("work/train2.ipynb")
    # a path that was not UTF-8 (os.environ gives lone surrogates) has a key too
    assert re.fullmatch(r"[0-9a-f]{16}", identity_key("caf\udce9.ipynb"))
