"""The ``%greed`` line magic: see and steer what the kernel keeps and frees.

The arguments are parsed with IPython's ``magic_arguments``, so ``%greed?`` shows
the real usage, and a bad request is answered the way IPython answers one: a
``UsageError``, shown as one ``UsageError: ...`` line without a traceback. Every
table is one display_data with a plain-text and an HTML rendering (HTML in
JupyterLab, text in a terminal); nothing lands in ``Out``.

The magics see the kernel only through the engine's ``Service``; each subcommand that
a comm request also serves calls the service method of the same name, and checks its
arguments by the same rules (``rules.py``).
"""

from __future__ import annotations

import argparse
import sys
import typing as t
from collections.abc import Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import (
    ArgDecorator,
    MagicHelpFormatter,
    argument,
    magic_arguments,
    parse_argstring,
)
from IPython.display import display

from .. import __version__
from ..memory.sizes import human_bytes
from . import render, rules

if t.TYPE_CHECKING:
    from ..engine.service import Service


# -- argument parsing ------------------------------------------------------------------------


class _SubcommandFormatter(MagicHelpFormatter):
    """A subcommand's usage on one line, ``%greed why NAME`` (IPython's formatter puts
    it in an RST code block, which suits only the magic's docstring)."""

    def add_usage(self, usage: t.Any, actions: t.Any, groups: t.Any, prefix: str = "%") -> None:
        super().add_usage(usage, actions, groups, prefix)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: every error, unknown arguments included, is a UsageError
    ending with the subcommand's usage."""

    def error(self, message: str) -> t.NoReturn:
        raise UsageError(f"{message} (usage: {self.format_usage().strip()})")

    def parse_known_args(  # type: ignore[override]
        self, args: t.Any = None, namespace: t.Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class subcommand(ArgDecorator):
    """``@subcommand(NAME, HELP, argument(...), ...)``: one subcommand of the magic, with
    its own parser; the magic's help (``%greed?``) lists each one's usage and HELP."""

    def __init__(self, name: str, help: str, *arguments: argument, **parser: t.Any) -> None:
        self.name, self.help, self.arguments, self.parser = name, help, arguments, parser

    def add_to_parser(self, parser: t.Any, group: t.Any) -> None:
        if "subcommands" not in parser.__dict__:
            parser.subcommands = parser.add_subparsers(
                metavar="SUBCOMMAND",
                help="one of the subcommands below",
                parser_class=_SubcommandParser,
            )
            parser.listing = []
        sub = parser.subcommands.add_parser(
            self.name, formatter_class=_SubcommandFormatter, add_help=False, **self.parser
        )
        sub.set_defaults(command=self.name)
        for arg in self.arguments:
            arg.add_to_parser(sub, None)
        # the listing is rewritten with each subcommand, to align its second column
        parser.listing.append((sub.format_usage().strip(), self.help))
        width = max(len(usage) for usage, _ in parser.listing)
        parser.epilog = "Subcommands:" + "".join(
            f"\n{usage:<{width}}  {text}" for usage, text in parser.listing
        )


def _identifier(text: str) -> str:
    try:
        return rules.check_name(text)
    except rules.Refused as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _names(nargs: str = "+") -> argument:
    return argument("names", nargs=nargs, metavar="NAME", type=_identifier)


# -- the magics ------------------------------------------------------------------------------


@magics_class
class GreedMagics(Magics):
    """``%greed``, and ``%tb`` for errors whose frames Greed released."""

    def __init__(self, shell: t.Any, service: Service) -> None:
        # IPython's %tb, which ours falls back to: looked up before ours replaces it
        self._ipython_tb: Callable[[str], t.Any] = shell.find_line_magic("tb")
        super().__init__(shell)
        self.service = service

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help (as %%greed? does)")
    @subcommand("vars", "the variables, largest first: size, device, last use, decision")
    @subcommand(
        "why",
        "the rule that keeps (or frees) NAME, and when it was last touched",
        argument("name", metavar="NAME", type=_identifier),
    )
    @subcommand("preserve", "always keep these names", _names(), usage="%(prog)s NAME...")
    @subcommand(
        "unpreserve",
        "stop keeping them (also exempts them from GreedKernel.preserve)",
        _names(),
        usage="%(prog)s NAME...",
    )
    @subcommand(
        "cleanup",
        "run a cleanup now (--full also collects the frozen heap)",
        argument("--full", action="store_true"),
    )
    @subcommand("optimize", "run a tensor/CUDA optimisation now")
    @subcommand("paged", "values whose memory is paged out to disk (in place)")
    @subcommand(
        "restore",
        "read paged-out memory back into RAM now",
        _names("*"),
        argument("--all", action="store_true"),
        usage="%(prog)s NAME... | --all",
    )
    @subcommand("checkpoint", "write this notebook's checkpoint now; returns once it is durable")
    @subcommand("checkpoints", "this notebook's checkpoints: time, cell, size, what was not stored")
    @subcommand(
        "resume",
        "bind the names of the latest checkpoint (or ID); --replay also re-runs the cells "
        "that made what could not be stored",
        argument("id", nargs="?", metavar="ID"),
        argument("--replay", action="store_true"),
    )
    @subcommand("forget", "delete this notebook's checkpoints")
    @subcommand("stats", "the statistics sent to frontends")
    @subcommand("status", "version, configuration, counters and the last reports")
    @subcommand("help", "this help")
    @line_magic
    def greed(self, line: str) -> None:
        """See and steer what Greed keeps and frees."""
        try:
            args = parse_argstring(self.greed, line)
        except ValueError as e:  # unbalanced quotes
            raise UsageError(f"cannot parse arguments ({e})") from None
        command = getattr(args, "command", None)
        if args.help or command in (None, "help"):
            print(self.greed.__doc__.replace("::\n\n  %", "Usage: %", 1).rstrip())
        else:
            getattr(self, f"_{command}")(args)

    @magic_arguments()
    @argument("mode", nargs="?", help="Plain, Context, Verbose, ... (see %%xmode)")
    @line_magic
    def tb(self, line: str) -> None:
        """IPython's %tb: print the last traceback. After Greed released the stored error
        (to free its frames' memory), the traceback as it was shown."""
        parse_argstring(self.tb, line)
        shown = self.service.shown_traceback()
        if getattr(sys, "last_traceback", None) is not None or not shown:
            self._ipython_tb(line)
            return
        print("\n".join(shown))
        print(
            "(Greed released this error's frames to free their memory; "
            "the text above is the traceback as it was shown.)",
            file=sys.stderr,
        )

    # -- subcommands ---------------------------------------------------------------------
    def _vars(self, args: argparse.Namespace) -> None:
        rows = self.service.vars()
        if not rows:
            print("Greed: no user variables yet.")
            return
        body = [
            [
                r["name"],
                r["type"],
                human_bytes(r["size"]),
                r["device"] or "",
                render.ago(r["lastTouchedAgo"], r["lastTouchedCell"]),
                r["decision"] + (f" ({r['rule']})" if r["rule"] != r["decision"] else ""),
            ]
            for r in rows
        ]
        headers = ["name", "type", "size", "device", "last touched", "decision"]
        display(render.table(headers, body, title=f"Greed: {len(rows)} variables"), raw=True)

    def _why(self, args: argparse.Namespace) -> None:
        try:
            why = self.service.why(args.name)
        except KeyError:
            raise UsageError(f"no variable named {args.name!r}") from None
        size = human_bytes(why["size"]) + (f" on {why['device']}" if why["device"] else "")
        touched = render.ago(why["lastTouchedAgo"], why["lastTouchedCell"])
        text = (
            f"{args.name}: {why['reason']}. Rule: {why['rule']}. "
            f"Last touched: {touched}. Size: {size}."
        )
        if why["pagedBytes"]:
            text += (
                f" Paged out: {human_bytes(why['pagedBytes'])} of its memory is backed by a file"
                " and read back from disk on use."
            )
        print(text)

    def _preserve(self, args: argparse.Namespace) -> None:
        self.service.preserve(args.names)
        missing = [n for n in args.names if n not in self.shell.user_ns]
        msg = f"Greed: preserving {', '.join(args.names)}."
        if missing:
            msg += f" Not defined yet (kept once defined): {', '.join(missing)}."
        print(msg)

    def _unpreserve(self, args: argparse.Namespace) -> None:
        self.service.unpreserve(args.names)
        print(f"Greed: no longer preserving {', '.join(args.names)} (recent use still keeps them).")

    def _cleanup(self, args: argparse.Namespace) -> None:
        report = self.service.cleanup("manual", full=args.full)
        if report is None:  # the engine logged why; not a usage error
            print("Greed: the cleanup failed; see the kernel log.", file=sys.stderr)
            return
        paged = (
            f"paged out {human_bytes(report['pagedBytes'])} of {', '.join(report['paged'])}, "
            if report["paged"]
            else ""
        )
        print(
            f"Greed: cleanup deleted {len(report['deleted']) + len(report['evicted'])} names, "
            f"{paged}released {report['outputsReleased']} outputs"
            + (" and the stored error" if report["errorReleased"] else "")
            + f"; RSS {human_bytes(report['rssBefore'])} -> {human_bytes(report['rssAfter'])} "
            f"in {report['durationMs']:.1f} ms."
        )

    def _optimize(self, args: argparse.Namespace) -> None:
        report = self.service.optimize("manual")
        if report is None:
            print("Greed: the optimisation failed; see the kernel log.", file=sys.stderr)
            return
        print(
            f"Greed: optimisation cleared {report['gradsCleared']} stale gradients, "
            f"emptied the CUDA cache on {len(report['cudaEmptied'])} devices "
            f"in {report['durationMs']:.1f} ms."
        )

    def _paged(self, args: argparse.Namespace) -> None:
        paged = self.service.paged()
        if not paged:
            print("Greed: nothing is paged out.")
            return
        rows = [
            [name, self._type_of(name), human_bytes(nbytes)]
            for name, nbytes in sorted(paged.items(), key=lambda kv: -kv[1])
        ]
        display(
            render.table(["name", "type", "paged out"], rows, title="Greed: paged out"), raw=True
        )

    def _type_of(self, name: str) -> str:
        try:
            return str(self.service.why(name)["type"])
        except KeyError:  # gone from the namespace meanwhile
            return ""

    def _restore(self, args: argparse.Namespace) -> None:
        if args.all == bool(args.names):
            raise UsageError("give NAME... or --all (usage: %greed restore NAME... | --all)")
        try:
            names = rules.restorable(self.service.paged(), None if args.all else args.names)
        except rules.Refused as e:
            raise UsageError(str(e)) from None
        if not names:
            print("Greed: nothing is paged out.")
            return
        nbytes = self.service.restore(names)
        print(f"Greed: read {human_bytes(nbytes)} of {', '.join(names)} back into RAM.")

    def _checkpoint(self, args: argparse.Namespace) -> None:
        summary = self.service.checkpoint()
        if summary is None:
            raise UsageError("this kernel does not know which notebook it belongs to")
        print(render.checkpoint_line(summary))

    def _checkpoints(self, args: argparse.Namespace) -> None:
        rows = [render.checkpoint_row(s) for s in self.service.checkpoints()]
        if not rows:
            print("Greed: this notebook has no checkpoint yet.")
            return
        headers = ["id", "time", "cell", "size", "not stored"]
        display(render.table(headers, rows, title="Greed: checkpoints"), raw=True)

    def _resume(self, args: argparse.Namespace) -> None:
        try:
            done = self.service.resume(args.id)
        except LookupError as e:
            raise UsageError(str(e.args[0])) from None
        print(render.resumed(done, replay=args.replay))
        if args.replay:
            for cell, source in sorted(done["replay"].items(), key=lambda kv: int(kv[0])):
                print(f"Greed: replaying cell {cell}")
                self.shell.run_cell(source, store_history=False)

    def _forget(self, args: argparse.Namespace) -> None:
        freed = self.service.forget()
        print(f"Greed: deleted this notebook's checkpoints ({human_bytes(freed)}).")

    def _stats(self, args: argparse.Namespace) -> None:
        rows = [render.stat(key, value) for key, value in self.service.stats().items()]
        display(render.table(["stat", "value"], rows, title="Greed stats"), raw=True)

    def _status(self, args: argparse.Namespace) -> None:
        status, reports = self.service.status(), self.service.history()
        rows: list[list[t.Any]] = [
            ["version", __version__],
            ["executions", status["executionCount"]],
            ["next periodic cleanup", render.due(status["nextCleanupIn"])],
            ["next periodic optimize", render.due(status["nextOptimizeIn"])],
            ["cleanups", status["cleanups"]],
            ["optimisations", status["optimizations"]],
            ["paged out now", human_bytes(status["pagedBytes"])],
            ["paging directory", status["pagingDirectory"] or "(chosen at the first page-out)"],
            ["memory guard", render.guard(status)],
            ["checkpoint", render.checkpoint_status(status)],
        ]
        if status["previousKernel"]:
            rows.insert(1, ["previous kernel", status["previousKernel"]])
        if status["budgetRefusal"] is not None:
            rows.append(["memory budget not held", render.refusal(status["budgetRefusal"])])
        budget = [r for r in reports if r["kind"] == "cleanup" and r["trigger"] == "memory"]
        rows += [["budget cleanup", render.budget_cleanup(r)] for r in budget[-3:]]
        rows += [[label, status[key]] for key, label in render.NOTES.items() if status[key]]
        rows += [[f"GreedKernel.{k}", v] for k, v in self.service.settings().items()]
        rows += [[f"last {r['kind']}", render.report(r)] for r in reports[-5:]]
        display(render.table(["", "value"], rows, title=f"Greed {__version__} status"), raw=True)
