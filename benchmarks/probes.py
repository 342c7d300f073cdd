"""Code the suites run inside a kernel, as cells, to time it from within.

Each snippet uses public surfaces only: ipykernel's table of shell handlers
(``kernel.shell_handlers``, wrapped to time the execute handler), and greed's own
switch, ``kernel.greed.unregister()`` / ``register()``, which disconnects greed from
the shell's cell events and from the trees IPython compiles and connects it again,
and the kernel's trait ``guard_threshold``. None of them replaces a method of a greed
class or sets an attribute of a greed object. Names they leave in the namespace
start with ``_bench``.
"""

from __future__ import annotations

#: Run once in every kernel of the trivial suite (python3's and greed's alike): the time
#: from an execute request's handler being called to its reply being sent, in the kernel.
HANDLER_TIMER = """\
def _bench_timer(kernel=get_ipython().kernel, times=[]):
    import time
    inner = kernel.shell_handlers["execute_request"]
    async def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)
    kernel.shell_handlers["execute_request"] = timed
    return times
_bench_times = _bench_timer()
del _bench_timer
"""
#: Its readout: one handler time per cell (us), comma-separated.
HANDLER_TIMES = "print(','.join(f'{s * 1e6:.1f}' for s in _bench_times))"

#: Run once in every greed kernel of the trivial suite, after the latency cells: from
#: the next cell on, something of greed is on for every other cell and off for the
#: others, the switch made after each cell's reply is built (:func:`toggle` fills in
#: what). Each cell's execute handler is timed (wall and the main thread's CPU time),
#: for the first CELLS cells.
_TOGGLE = """\
def _bench_toggle(kernel=get_ipython().kernel):
    import time
    greed = kernel.greed
    threshold = kernel.guard_threshold
    inner = kernel.shell_handlers["execute_request"]
    size = CELLS
    wall, cpu, attached, n, state = [0.0] * size, [0.0] * size, [0] * size, [0], [1]
    stopped = []
    pc, tt = time.perf_counter, time.thread_time
    async def timed(*args, **kwargs):
        t0, c0 = pc(), tt()
        try:
            return await inner(*args, **kwargs)
        finally:
            if not stopped:
                i = n[0]
                if i < size:
                    wall[i], cpu[i], attached[i] = pc() - t0, tt() - c0, state[0]
                n[0] += 1
                if state[0]:
                    SWITCH_OFF
                else:
                    SWITCH_ON
                state[0] ^= 1
    def stop():
        stopped.append(True)  # this cell is not recorded, and greed stays attached
        kernel.shell_handlers["execute_request"] = inner
        print(";".join(
            f"{attached[i]},{wall[i] * 1e6:.1f},{cpu[i] * 1e6:.1f}" for i in range(min(n[0], size))
        ))
    kernel.shell_handlers["execute_request"] = timed
    return stop
_bench_toggle_stop = _bench_toggle()
del _bench_toggle
"""
#: What :func:`toggle` switches: greed itself (``greed.unregister()``: no shell events,
#: no tree hook; the kernel's ``do_execute`` stays greed's, which then reads one flag
#: per cell), or only the memory guard (the public trait ``guard_threshold``, 0: off).
SWITCHES = {
    "greed": ("greed.unregister()", "greed.register()"),
    "guard": ("kernel.guard_threshold = 0.0", "kernel.guard_threshold = threshold"),
}


def toggle(switch: str, cells: int) -> str:
    """The cell that starts the toggle of *switch* (a key of :data:`SWITCHES`) for
    *cells* cells."""
    off, on = SWITCHES[switch]
    return _TOGGLE.replace("CELLS", str(cells)).replace("SWITCH_OFF", off).replace("SWITCH_ON", on)


#: Its readout: one "on,wall_us,cpu_us" per cell; the readout's own cell runs with the
#: switch on (after an even count of cells) and is neither recorded nor switched.
TOGGLE_STOP = "_bench_toggle_stop()"

#: Detach greed for good (as the toggle does on its detached cells).
DETACH = "get_ipython().kernel.greed.unregister()"
