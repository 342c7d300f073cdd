"""The machine, the versions and the greed_kernel sources a run's numbers come from."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import typing as t
from importlib import metadata
from pathlib import Path

import psutil


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def greed_source() -> dict[str, t.Any]:
    """Which greed_kernel the kernels ran: the checkout's HEAD and a hash of the sources."""
    import hashlib
    import subprocess

    package = Path(__file__).resolve().parent.parent / "greed_kernel"
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=package.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return {"git_head": head or None, "sources_sha256": digest.hexdigest()}


def environment() -> dict[str, t.Any]:
    """The machine and the versions the numbers were taken with."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "machine": {
            "cores": os.cpu_count(),
            "ram_bytes": psutil.virtual_memory().total,
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "ipykernel": _version("ipykernel"),
            "IPython": _version("ipython"),
            "torch": _version("torch"),
            "jupyter_client": _version("jupyter_client"),
            "matplotlib": _version("matplotlib"),
            "greed_kernel": _version("greed-kernel") or _greed_version(),
        },
        "loadavg": load,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": _argv(),
    }


def _argv() -> list[str]:
    """The command line, without the path this checkout happens to live at."""
    first = Path(sys.argv[0]) if sys.argv else Path()
    if first.name == "__main__.py":
        head = f"-m {first.parent.name}"
    elif first.suffix == ".py":
        head = f"-m {first.parent.name}.{first.stem}"
    else:
        head = first.name
    return [head, *sys.argv[1:]]


def _greed_version() -> str | None:
    try:
        from greed_kernel import __version__

        return __version__
    except Exception:
        return None
