"""What the calls of one line of bytecode are, as shapes (for ``threads``).

A thread is known to wait at some lines only (an executor worker's
``work_queue.get(block=True)``, a line that only calls ``time.sleep``): ``threads``
asks which line a frame's instruction is on and what that line calls, told from the
instructions that load the callee and its arguments. A shape is a nested tuple, e.g.
``(("attr", ("fast", "work_queue"), "get"), (("const", True),))``; None means a line
whose calls cannot be told.
"""

from __future__ import annotations

import dis
import types

_SKIP = {"NOP", "RESUME", "CACHE", "EXTENDED_ARG", "PUSH_NULL", "PRECALL", "KW_NAMES"}
_SKIP |= {"END_FOR", "POP_EXCEPT", "RETURN_CONST", "JUMP_FORWARD", "JUMP_BACKWARD"}
_SKIP.add("JUMP_BACKWARD_NO_INTERRUPT")
_LOADS = {
    "LOAD_CONST": "const",
    "LOAD_FAST": "fast",
    "LOAD_FAST_CHECK": "fast",
    "LOAD_DEREF": "deref",
    "LOAD_GLOBAL": "global",
    "LOAD_NAME": "name",
}
_POPS = {"POP_TOP": 1, "STORE_FAST": 1, "RETURN_VALUE": 1, "STORE_FAST_STORE_FAST": 2}


def line_at(code: types.CodeType, lasti: int) -> int | None:
    """The line of the instruction at byte offset ``lasti``."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line
    return None


def lines(code: types.CodeType, only: int | None = None) -> dict[int, tuple[tuple, ...] | None]:
    """The calls each line of ``code`` makes (or only line ``only``), in order."""
    ranges = [r for r in code.co_lines() if r[2] is not None and only in (None, r[2])]
    by_line: dict[int, list[dis.Instruction]] = {}
    for ins in dis.get_instructions(code):
        for start, end, line in ranges:
            if start <= ins.offset < end:
                by_line.setdefault(line, []).append(ins)
                break
    return {line: calls(instructions) for line, instructions in by_line.items()}


def calls(instructions: list[dis.Instruction]) -> tuple[tuple, ...] | None:
    """The calls that instructions make, each as (callee, args), from a small
    simulation of the stack: a value is ("const", v), ("fast"|"deref"|"global"|"name",
    name), ("attr", value, name), ("result", i) of the i-th call, ("iter", value) or
    ("item",); FOR_ITER calls ("next",). None when they do anything but load, call,
    iterate, unpack and store to fast locals, or use what earlier lines left."""
    stack: list[tuple] = []
    calls: list[tuple] = []

    def pop(n: int) -> tuple:
        if n > len(stack):
            raise IndexError
        taken = tuple(stack[len(stack) - n :])
        del stack[len(stack) - n :]
        return taken

    try:
        for ins in instructions:
            op = ins.opname
            if op in _SKIP:
                continue
            if op in _LOADS:
                stack.append((_LOADS[op], ins.argval))
            elif op == "LOAD_FAST_LOAD_FAST":
                stack.extend(("fast", name) for name in ins.argval)
            elif op in ("LOAD_ATTR", "LOAD_METHOD"):
                stack.append(("attr", *pop(1), ins.argval))
            elif op in ("CALL", "CALL_KW"):
                pop(op == "CALL_KW")  # the keywords' names
                args = pop(ins.arg or 0)
                calls.append((*pop(1), args))
                stack.append(("result", len(calls) - 1))
            elif op == "GET_ITER":
                stack.append(("iter", *pop(1)))
            elif op == "FOR_ITER":
                calls.append((("next",), (stack[-1],)))
                stack.append(("item",))
            elif op == "UNPACK_SEQUENCE":
                pop(1)
                stack.extend([("item",)] * (ins.arg or 0))
            elif op in _POPS:
                pop(_POPS[op])
            else:
                return None
    except IndexError:
        return None
    return tuple(calls)
