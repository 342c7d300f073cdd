"""`jupyter console --kernel greed` works in a terminal."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.timeout(90)


def _jupyter() -> str:
    beside = Path(sys.executable).with_name("jupyter")
    return str(beside) if beside.exists() else (shutil.which("jupyter") or "jupyter")


def test_console_session(jupyter_sandbox) -> None:
    log = io.StringIO()
    child = pexpect.spawn(
        _jupyter(),
        ["console", "--kernel", "greed", "--simple-prompt"],
        env=jupyter_sandbox.environ(),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    child.logfile_read = log
    try:
        child.expect(r"In \[1\]: ")
        assert "Greed" in child.before  # the kernel's banner
        child.sendline("x = 41")
        child.expect(r"In \[2\]: ")
        child.sendline("x + 1")
        child.expect(r"Out\[2\]: 42")
        child.expect(r"In \[3\]: ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, log.getvalue()
    finally:
        if child.isalive():
            child.terminate(force=True)
