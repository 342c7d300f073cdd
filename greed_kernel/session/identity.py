"""Which notebook a kernel belongs to, and the short key its files are named by.

The death record (``record.py``) and the checkpoints of a notebook find the files of
the notebook's earlier kernels by this identity, so both must derive it the same way:
through :func:`notebook_identity` and :func:`identity_key`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

__all__ = ["identity_key", "notebook_identity"]

#: A connection file as Jupyter names it: ``kernel-<kernel id>.json``.
_CONNECTION_FILE = re.compile(r"kernel-([A-Za-z0-9_-]{1,200})\.json")
#: Hex digits of the key: 64 bits keep a user's notebooks apart.
KEY_LENGTH = 16


def notebook_identity(
    environ: Mapping[str, str], session_name: str, connection_file: str
) -> str | None:
    """The notebook this kernel belongs to, or None when nothing says.

    In order: ``JPY_SESSION_NAME`` in *environ* (jupyter-server sets it to the
    notebook's path), else *session_name* (``GreedKernel.session_name``), else the
    kernel id of a connection file named ``kernel-<id>.json`` (a restart through the
    kernel manager keeps it).
    """
    name = environ.get("JPY_SESSION_NAME")
    if name:
        return name
    if session_name:
        return session_name
    match = _CONNECTION_FILE.fullmatch(os.path.basename(connection_file or ""))
    return match.group(1) if match else None


def identity_key(identity: str) -> str:
    """A short stable key for *identity*, safe in a file name: the first 16 hex digits
    of its SHA-256 (lone surrogates, as undecodable paths give, are hashed too)."""
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:KEY_LENGTH]
