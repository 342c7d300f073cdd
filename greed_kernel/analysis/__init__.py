"""What a cell reads and writes: IPython syntax made Python (``syntax``), the scope
analysis of a cell's tree (``scope``, ``bindings``, ``cellnames``), and each name's
last access through the user's own functions (``tracker``).

Layer: the bottom. Imports nothing else of greed_kernel.
"""
