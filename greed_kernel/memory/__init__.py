"""Memory as the kernel sees it: what a value holds (``sizes``, ``kinds``,
``introspect``, ``torchlib``: the one module that touches torch), how much the process
uses against its limit (``probe``, ``limits``), and paging memory out in place
(``paging``, ``pagedmap``, ``pageio``, ``pagingdir``, ``swap``, ``allocators``,
``threads``, ``linecalls``, ``procmaps``).

Layer: the bottom, beside ``analysis``. Imports nothing else of greed_kernel.
"""
