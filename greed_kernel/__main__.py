"""Command line of the Greed kernel.

``python -m greed_kernel -f CONNECTION_FILE [options]``
    Start the kernel (what Jupyter runs). Every IPKernelApp option works, and so
    do GreedKernel's traits: ``--GreedKernel.cleanup_interval=5``, or
    ``c.GreedKernel.cleanup_interval = 5`` in ``ipython_kernel_config.py`` or
    ``greed_kernel_config.py`` of the IPython profile. ``--help-all`` lists them.

``python -m greed_kernel install [--user | --sys-prefix | --prefix DIR] [--name NAME]
[--display-name TEXT]``
    Install the kernel spec for this interpreter (see ``greed_kernel.kernelspec``).

ipykernel and the kernel are imported only when a kernel starts.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any, ClassVar


@functools.cache
def _app_class() -> type:
    from ipykernel.kernelapp import IPKernelApp
    from traitlets import Type, default

    from . import __version__
    from .kernel import GreedKernel

    class GreedKernelApp(IPKernelApp):
        """The Greed kernel application: an IPKernelApp that runs a GreedKernel."""

        name = "greed-kernel"
        version = __version__
        description = (
            "Greed: an IPython kernel for long PyTorch sessions that keeps memory flat.\n\n"
            "Start it with `python -m greed_kernel -f CONNECTION_FILE`; install its "
            "kernel spec with `python -m greed_kernel install --help`."
        )
        examples = (
            "python -m greed_kernel -f kernel.json --GreedKernel.cleanup_interval=5\n"
            "python -m greed_kernel install --user"
        )
        classes: ClassVar[list[type]] = [*IPKernelApp.classes, GreedKernel]
        # ipykernel's own `install` subcommand would install the python3 spec.
        subcommands: ClassVar[dict[str, Any]] = {}

        kernel_class = Type(
            GreedKernel,
            klass="ipykernel.kernelbase.Kernel",
            help="The Kernel subclass to be used (GreedKernel).",
        ).tag(config=True)

        @default("config_files")
        def _config_files_default(self) -> list[str]:
            # Keep honouring IPython's kernel config file, then our own (which wins).
            return ["ipython_kernel_config.py", self.config_file_name]

    return GreedKernelApp


def __getattr__(name: str) -> Any:
    if name == "GreedKernelApp":
        return _app_class()
    raise AttributeError(name)


def main(argv: Sequence[str] | None = None) -> int | None:
    """Dispatch to ``install`` or start the kernel."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "install":
        from .kernelspec import main as install_main

        return install_main(args[1:])

    from .kernel import GreedKernel

    _app_class().launch_instance(args, kernel_class=GreedKernel)
    return None


if __name__ == "__main__":
    sys.exit(main())
