"""Programs for the differential harness (tests/differential.py).

Each program is a list of cells, run after the harness's prelude (``np``,
``torch`` or None, ``cs(x)`` a fingerprint of a value's bytes). Between any two
cells greed pages out every stale tensor and array, so each program checks that
a value paged out in one cell is, in a later cell, exactly what python3 has.
Programs marked ``torch`` need torch and are skipped without it; a program that
needs a newer Python (``sys.monitoring``) is only in the corpus where it runs.

The names avoid GreedKernel's default preserve list (``model``, ``data``,
``X``...), which would keep them out of the eviction under test.
"""

from __future__ import annotations

import sys

N = 1 << 18  # float64 elements: 2 MiB, many whole pages


def _busy_cells(prefix: str, count: int = 6) -> list[str]:
    """Cells that each make a new 8 MiB array: after each, greed has it and every other
    stale array of the program to page, while the program's intruder keeps writing.
    (No ``np.random`` here: a collection inside it whose callback runs numpy code
    deadlocks numpy, on python3 too.)"""
    return [
        f"{prefix}_w{i} = np.full({1 << 20}, {i}.5)\nprint(bool({prefix}_w{i}[0] > 0))"
        for i in range(count)
    ]


#: A 2 ms SIGALRM handler adds 1 to every element of two 2 MiB arrays: on python3 every
#: element ends equal to the number of ticks. Handlers run on the main thread only.
SIGNAL_HANDLER = [
    "import signal\n"
    f"sig_arrays = [np.zeros({N}), np.zeros({N})]\n"
    "sig_ticks = [0]\n"
    "def sig_tick(signum, frame):\n"
    "    for a in sig_arrays:\n"
    "        a += 1\n"
    "    sig_ticks[0] += 1\n"
    "sig_previous = signal.signal(signal.SIGALRM, sig_tick)\n"
    "signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)",
    *_busy_cells("sig"),
    "signal.setitimer(signal.ITIMER_REAL, 0)\n"
    "signal.signal(signal.SIGALRM, sig_previous)\n"
    "print(sig_ticks[0] > 0, [bool((a == sig_ticks[0]).all()) for a in sig_arrays])",
]

# The callbacks below write only when they run on the main thread (where greed works):
# one running on another thread could be half done when the last cell compares.

#: A gc callback adds 1 to an array at the start of every collection; with a threshold
#: of 1 a young collection runs every few allocations, greed's own included.
GC_CALLBACK = [
    f"gc_array = np.zeros({1 << 15})\n"
    "gc_runs = [0]\n"
    "gc_main = threading.get_ident()\n"
    "def gc_seen(phase, info):\n"
    "    if phase == 'start' and threading.get_ident() == gc_main:\n"
    "        gc_array[:] += 1\n"
    "        gc_runs[0] += 1\n"
    "gc_previous = gc.get_threshold()\n"
    "gc.callbacks.append(gc_seen)\n"
    "gc.set_threshold(1)",
    *_busy_cells("gcb"),
    "gc.set_threshold(*gc_previous)\n"
    "gc.callbacks.remove(gc_seen)\n"
    "print(gc_runs[0] > 0, bool((gc_array == gc_runs[0]).all()))",
]

#: Each finalizer adds 1 to an array and leaves a new object in a reference cycle, with
#: a finalizer of its own, for the next automatic collection (threshold 1) to free.
FINALIZER = [
    f"fin_array = np.zeros({1 << 15})\n"
    "fin_runs = [0]\n"
    "fin_on = [True]\n"
    "fin_main = threading.get_ident()\n"
    "class FinNode:\n"
    "    pass\n"
    "def fin_spawn():\n"
    "    node = FinNode()\n"
    "    node.me = node\n"
    "    weakref.finalize(node, fin_fired)\n"
    "def fin_fired():\n"
    "    if threading.get_ident() == fin_main:\n"
    "        fin_array[:] += 1\n"
    "        fin_runs[0] += 1\n"
    "    if fin_on[0]:\n"
    "        fin_spawn()\n"
    "fin_previous = gc.get_threshold()\n"
    "gc.set_threshold(1)\n"
    "fin_spawn()",
    *_busy_cells("fin"),
    "gc.set_threshold(*fin_previous)\n"
    "fin_on[0] = False\n"
    "gc.collect()\n"
    "print(fin_runs[0] > 0, bool((fin_array == fin_runs[0]).all()))",
]

#: A profile function (main thread only, as ``sys.setprofile`` is) adds 1 to one
#: element of an array on every call event: the array's sum must equal the calls seen.
PROFILER = [
    f"prof_array = np.zeros({1 << 15})\n"
    "prof_calls = [0]\n"
    "def prof_seen(frame, event, arg):\n"
    "    if event in ('call', 'c_call'):\n"
    f"        prof_array[prof_calls[0] % {1 << 15}] += 1\n"
    "        prof_calls[0] += 1\n"
    "sys.setprofile(prof_seen)",
    *_busy_cells("prof"),
    "sys.setprofile(None)\nprint(prof_calls[0] > 0, float(prof_array.sum()) == prof_calls[0])",
]

#: The same with a trace function (call events of Python functions; no line events).
TRACER = [
    f"trace_array = np.zeros({1 << 15})\n"
    "trace_calls = [0]\n"
    "def trace_seen(frame, event, arg):\n"
    "    if event == 'call':\n"
    f"        trace_array[trace_calls[0] % {1 << 15}] += 1\n"
    "        trace_calls[0] += 1\n"
    "sys.settrace(trace_seen)",
    *_busy_cells("trace"),
    "sys.settrace(None)\nprint(trace_calls[0] > 0, float(trace_array.sum()) == trace_calls[0])",
]

#: The same with ``sys.monitoring`` (Python 3.12+): Python function starts and every
#: call made from Python code; its events fire on every thread.
MONITORING = [
    f"mon_array = np.zeros({1 << 15})\n"
    "mon_calls = [0]\n"
    "mon_main = threading.get_ident()\n"
    "mon = sys.monitoring\n"
    "mon_tool = next(i for i in range(6) if mon.get_tool(i) is None)\n"
    "def mon_seen(code, offset, *args):\n"
    "    if threading.get_ident() == mon_main:\n"
    f"        mon_array[mon_calls[0] % {1 << 15}] += 1\n"
    "        mon_calls[0] += 1\n"
    "mon_events = mon.events.PY_START | mon.events.CALL\n"
    "mon.use_tool_id(mon_tool, 'differential')\n"
    "mon.register_callback(mon_tool, mon.events.PY_START, mon_seen)\n"
    "mon.register_callback(mon_tool, mon.events.CALL, mon_seen)\n"
    "mon.set_events(mon_tool, mon_events)",
    *_busy_cells("mon"),
    "mon.set_events(mon_tool, 0)\n"
    "mon.register_callback(mon_tool, mon.events.PY_START, None)\n"
    "mon.register_callback(mon_tool, mon.events.CALL, None)\n"
    "mon.free_tool_id(mon_tool)\n"
    "print(mon_calls[0] > 0, float(mon_array.sum()) == mon_calls[0])",
]

#: name -> (needs torch, cells)
PROGRAMS: dict[str, tuple[bool, list[str]]] = {
    # -- a rebinding that does not happen keeps the value -----------------------------
    "failing_load_keeps_value": (
        False,
        [f"features = np.random.rand({N})", "features = np.load('missing.npy')", "cs(features)"],
    ),
    "rebinding_in_dead_branch": (
        False,
        [
            f"features = np.random.rand({N})",
            "if False:\n    features = None",
            "for features in []:\n    pass",
            "cs(features)",
        ],
    ),
    "global_in_uncalled_function": (
        False,
        [
            f"features = np.random.rand({N})",
            "def f():\n    global features\n    features = None",
            "cs(features)",
        ],
    ),
    "failing_assignment_in_try": (
        False,
        [
            f"features = np.random.rand({N})",
            "try:\n    features = 1 / 0\nexcept ZeroDivisionError:\n    pass",
            "cs(features)",
        ],
    ),
    "memory_error_keeps_other_values": (
        False,
        [
            f"features = np.random.rand({N})",
            "preds = np.ones((1 << 62,))",
            "print(cs(features), 'preds' in globals())",
        ],
    ),
    "rebinding_gets_new_value": (
        False,
        [f"x = np.random.rand({N})", "y1 = cs(x)", f"x = np.zeros({N})", "print(cs(x), y1)"],
    ),
    # -- identity, weak references, flags ---------------------------------------------
    "identity_and_weakrefs": (
        False,
        [
            f"arr = np.random.rand({N})\nident = id(arr)\nref = weakref.ref(arr)",
            "fin = weakref.finalize(arr, print, 'finalized')",
            "print(id(arr) == ident, ref() is arr, fin.alive)",
            "del arr",
            "print(ref() is None, fin.alive)",
        ],
    ),
    "read_only_array_stays_read_only": (
        False,
        [
            f"ro = np.random.rand({N})\nro.flags.writeable = False",
            "print(ro.flags.writeable)",
            "ro[0] = 1.0",
            "cs(ro)",
        ],
    ),
    "views_and_in_place_writes": (
        False,
        [
            f"base = np.random.rand({N})\nview = base[1000:50000]",
            "base *= 2",
            "print(cs(view), cs(base))",
            "view[:] = 7",
            "print(cs(base))",
        ],
    ),
    "numpy_resize_in_place": (
        False,
        [
            f"grow = np.random.rand({N})",
            f"grow.resize(({2 * N},), refcheck=False)",
            "cs(grow)",
        ],
    ),
    "containers_and_aliases": (
        False,
        [
            f"a1 = np.random.rand({N})\nalias = a1\nbox = [a1, {{'k': a1}}]",
            "print(box[0] is a1, box[1]['k'] is alias, cs(box[0]))",
            "a1[5] = -1",
            "print(cs(alias))",
        ],
    ),
    "pandas_frame": (
        False,
        [
            "import pandas as pd",
            f"frame = pd.DataFrame(np.random.rand({N // 4}, 4), columns=list('abcd'))",
            "print(frame.sum().round(12).tolist())",
            "frame.loc[0, 'a'] = 5.0\nprint(frame.iloc[0].tolist()[0])",
        ],
    ),
    # -- code that uses a global the scanner cannot see --------------------------------
    "invisible_uses": (
        False,
        [
            f"hidden = np.random.rand({N})",
            "print(cs(globals()['hidden']), cs(eval('hidden')))",
            "print(sorted(k for k in globals() if k in ('hidden', 'nothere')))",
            "print('hidden' in dir())",
            "%who ndarray",
            "print(get_ipython().complete('hidd')[1])",
            "info = get_ipython().object_inspect('hidden')\n"
            "print(info['found'], info['type_name'], info['length'])",
        ],
    ),
    "decorated_function_uses_a_global": (
        False,
        [
            f"weights_a = np.random.rand({N})",
            "import functools\n"
            "def logged(f):\n    @functools.wraps(f)\n    def inner(*a):\n        return f(*a)\n"
            "    return inner\n"
            "@logged\ndef total():\n    return cs(weights_a)",
            "print(total(), total.__name__)",
        ],
    ),
    "generators_closures_threads": (
        False,
        [
            f"src = np.random.rand({N})",
            "def gen():\n    for i in range(3):\n        yield float(src[i])\n"
            "g = gen()\nprint(next(g))",
            "print(next(g))",
            "make = lambda: (lambda: cs(src))\nf = make()",
            "print(f())",
            "out = []\nth = threading.Thread(target=lambda: out.append(cs(src)))\nth.start()\n"
            "th.join()\nprint(out)",
        ],
    ),
    "shadowing_builtins_and_magics": (
        False,
        [
            f"input = np.random.rand({N})\nll = np.arange({N})",
            "print(type(input).__name__)",
            "ll[:3]",
        ],
    ),
    "class_redefinition_and_bound_methods": (
        False,
        [
            "class Box:\n    def __init__(self, n):\n        self.v = np.random.rand(n)\n"
            "    def total(self):\n        return cs(self.v)",
            f"b = Box({N})\nm = b.total\nOld = Box",
            "class Box:\n    pass",
            "print(type(b) is Old, m.__self__ is b, m())",
        ],
    ),
    "reset_forgets": (
        False,
        [
            f"gone = np.random.rand({N})\nkept_too = np.random.rand({N})",
            "%reset_selective -f ^gone$",
            "print('gone' in globals(), cs(kept_too))",
            "%reset -f",
            "print('kept_too' in globals())",
        ],
    ),
    "del_and_collect_frees_cycles": (
        False,
        [
            f"class Node:\n    pass\nn = Node()\nn.me = n\nn.v = np.random.rand({N})\n"
            "r = weakref.ref(n)",
            "cs(n.v)",
            "del n\nprint(gc.collect() > 0, r() is None)",
        ],
    ),
    "a_library_call_that_collects_frees_cycles": (
        False,
        [
            # a function of a module the cell imports, not the cell, calls gc.collect():
            # the cycle made in earlier cells (old by then) is freed as in python3
            f"class Ring:\n    pass\nring = Ring()\nring.me = ring\nring.v = np.random.rand({N})\n"
            "r = weakref.ref(ring)",
            "cs(ring.v)",
            "import types\nlib = types.ModuleType('lib')\n"
            "exec('import gc\\ndef tidy():\\n    return gc.collect()', lib.__dict__)",
            "del ring\nprint(lib.tidy() > 0, r() is None)",
        ],
    ),
    "deep_object_graph_with_high_recursion_limit": (
        False,
        [
            "sys.setrecursionlimit(10**6)",
            f"deep = [np.random.rand({N})]\nfor _ in range(200000):\n    deep = [deep]",
            "d = deep\nwhile len(d) == 1 and isinstance(d[0], list):\n    d = d[0]\n"
            "print(cs(d[0]))",
            "sys.setrecursionlimit(3000)",
        ],
    ),
    # -- Python code that runs inside greed's own work and writes to paged arrays ---------
    # A handler, callback, finalizer or tracer runs on the main thread whenever Python
    # code runs there, greed's cleanup included. What it writes to an array while greed
    # copies that array to its file and maps the file over it must not be lost: each
    # program counts the writes and, at the end, checks that every array holds them all.
    "signal_handler_writes_while_paging": (False, SIGNAL_HANDLER),
    "gc_callback_writes_while_paging": (False, GC_CALLBACK),
    "weakref_finalizer_writes_while_paging": (False, FINALIZER),
    "profiler_writes_while_paging": (False, PROFILER),
    "tracer_writes_while_paging": (False, TRACER),
    # "monitoring_writes_while_paging" is added below where sys.monitoring exists
    # -- torch ----------------------------------------------------------------------------
    "tensor_views_numpy_sharing_resize": (
        True,
        [
            f"t = torch.randn({N})\nv = t[10:1000]\nshared_np = np.random.rand({N})\n"
            "shared_t = torch.from_numpy(shared_np)",
            "shared_np[0] = 42.0\nprint(float(shared_t[0]), cs(v))",
            "t.mul_(3)\nprint(cs(v))",
            f"grown = torch.zeros({N})",
            f"grown.resize_({2 * N})\nprint(grown.shape, cs(grown[:{N}]))",
            "print(shared_t.data_ptr() == shared_np.ctypes.data)",
        ],
    ),
    "model_and_adam_between_backward_and_step": (
        True,
        [
            "net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), "
            "torch.nn.Linear(512, 10))\nopt = torch.optim.Adam(net.parameters(), lr=1e-3)\n"
            "inp = torch.randn(64, 256)\ntarget = torch.randint(0, 10, (64,))",
            "loss = torch.nn.functional.cross_entropy(net(inp), target)\nloss.backward()",
            "print([cs(p.grad) for p in net.parameters()][:2])",
            "opt.step()\nopt.zero_grad()",
            "for _ in range(3):\n    l = torch.nn.functional.cross_entropy(net(inp), target)\n"
            "    l.backward()\n    opt.step()\n    opt.zero_grad()\nprint(float(l))",
            "print([cs(p) for p in net.parameters()][:2], "
            "sorted(k for k in opt.state[next(net.parameters())]))",
        ],
    ),
    "non_leaf_tensor_and_hooks": (
        True,
        [
            f"w = torch.randn({N}, requires_grad=True)\nmid = w * 2\nseen = []\n"
            "handle = w.register_hook(lambda g: seen.append(cs(g)))",
            "print(mid.is_leaf, mid.grad_fn is not None, mid.requires_grad)",
            "mid.sum().backward()\nprint(cs(w.grad), seen)",
            "handle.remove()\nprint(w._version)",
        ],
    ),
}

# sys.monitoring is new in Python 3.12. The kernels run this same interpreter (the test
# process's), so the program exists exactly where both kernels can run it.
if sys.version_info >= (3, 12):
    PROGRAMS["monitoring_writes_while_paging"] = (False, MONITORING)
