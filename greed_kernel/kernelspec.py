"""Write and install the `greed` Jupyter kernel spec.

``python -m greed_kernel install [--user | --sys-prefix | --prefix DIR]`` lands
here. The spec runs the interpreter that installed it (``sys.executable``), so a
spec installed from a virtual environment keeps using that environment.

Only the standard library and jupyter_client are imported: installing a spec
never imports ipykernel or torch.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

#: The name Jupyter knows the kernel by (``jupyter console --kernel greed``).
KERNEL_NAME = "greed"
#: What front ends show in their launcher and kernel picker.
DISPLAY_NAME = "Greed (PyTorch)"
#: The Jupyter messaging protocol version that ipykernel 7's own spec declares.
KERNEL_PROTOCOL_VERSION = "5.5"
#: Files of the spec besides kernel.json.
LOGO_FILES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")

# Jupyter's rule for kernel names (jupyter_client lowercases them on install).
_VALID_NAME = re.compile(r"[a-z0-9._-]+", re.IGNORECASE)
_NAME_RULE = "use ASCII letters, digits, '-', '.' and '_'"


def _logo_sources() -> dict[str, Path]:
    """Where the logos are: the checkout's kernelspec/ when running from source,
    else the copies the installed wheel put in share/jupyter/kernels/greed."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "kernelspec").is_dir():
        found = {n: checkout / "kernelspec" / n for n in LOGO_FILES}
        return {n: p for n, p in found.items() if p.is_file()}
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("greed-kernel").files or []
    except PackageNotFoundError:
        return {}
    found = {}
    for file in files:
        parts = file.parts
        if len(parts) >= 2 and parts[-2] == KERNEL_NAME and parts[-1] in LOGO_FILES:
            path = Path(str(file.locate()))
            if path.is_file():
                found[parts[-1]] = path
    return found


def kernel_dict(executable: str | None = None, display_name: str = DISPLAY_NAME) -> dict[str, Any]:
    """The content of kernel.json for a kernel run by ``executable``."""
    return {
        "argv": [
            executable or sys.executable,
            # debugpy wants frozen modules off (as ipykernel's own spec does).
            "-Xfrozen_modules=off",
            "-m",
            "greed_kernel",
            "-f",
            "{connection_file}",
        ],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "kernel_protocol_version": KERNEL_PROTOCOL_VERSION,
        "metadata": {"debugger": True, "supported_encryption": ["curve"]},
    }


def write_kernel_spec(
    path: str | Path,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
    executable: str | None = None,
) -> Path:
    """Write a complete spec directory (kernel.json and logos) at ``path``.

    ``path`` is created if needed and may already hold an older spec. ``name``
    is the kernel name the directory is meant for; it goes in no file (Jupyter
    takes it from the directory name) but must be a valid kernel name.
    """
    if not _VALID_NAME.fullmatch(name):
        raise ValueError(f"invalid kernel name {name!r}: {_NAME_RULE}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for logo, source in _logo_sources().items():
        shutil.copyfile(source, path / logo)
    spec = kernel_dict(executable, display_name)
    (path / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return path


def install(
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
    executable: str | None = None,
) -> str:
    """Install the spec for ``executable`` (default: this interpreter).

    ``user`` installs into the user's Jupyter data directory, ``prefix`` into
    ``PREFIX/share/jupyter/kernels``; neither means the system-wide directory.
    An existing spec of the same name is replaced. Returns the directory.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if user and prefix:
        raise ValueError("choose either user or prefix, not both")
    with tempfile.TemporaryDirectory(prefix="greed-kernelspec-") as tmp:
        source = write_kernel_spec(Path(tmp) / name, name, display_name, executable)
        return KernelSpecManager().install_kernel_spec(
            str(source), kernel_name=name, user=user, prefix=prefix
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m greed_kernel install",
        description=(
            f"Install the Greed kernel spec (greed_kernel {__version__}) so that Jupyter "
            "front ends can start it. The spec runs this Python interpreter "
            f"({sys.executable}). Installing again replaces the spec."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--user",
        action="store_true",
        help="install for the current user (in the user's Jupyter data directory)",
    )
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help="install into this Python environment (sys.prefix), e.g. a virtualenv",
    )
    where.add_argument(
        "--prefix",
        metavar="DIR",
        help="install into DIR/share/jupyter/kernels (DIR/share/jupyter must then be "
        "on JUPYTER_PATH, unless DIR is the environment's prefix)",
    )
    parser.add_argument(
        "--name",
        default=KERNEL_NAME,
        help=f"kernel name, as in `jupyter console --kernel NAME` (default: {KERNEL_NAME})",
    )
    parser.add_argument(
        "--display-name",
        default=DISPLAY_NAME,
        metavar="TEXT",
        help=f"name shown by front ends (default: {DISPLAY_NAME!r})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m greed_kernel install``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not _VALID_NAME.fullmatch(args.name):
        parser.error(f"invalid kernel name {args.name!r}: {_NAME_RULE}")
    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        dest = install(
            user=args.user, prefix=prefix, name=args.name, display_name=args.display_name
        )
    except OSError as err:
        print(f"greed_kernel install: {err}", file=sys.stderr)
        if not (args.user or prefix):
            print("(try --user or --sys-prefix)", file=sys.stderr)
        return 1
    print(f"Installed kernel spec {args.name!r} ({args.display_name}) in {dest}")
    return 0
