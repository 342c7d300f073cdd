# Greed kernel: developer tasks. Every target is idempotent.
#
#   make install       create .venv (if missing), install the package with its `torch` and
#                      `dev` extras, and the `greed` kernel spec
#   make lint          ruff check + ruff format --check
#   make test          install, lint, browser-deps, then the whole test suite
#   make test-fast     install, then the pure and in-process tiers only (no kernels, no
#                      browser, no root; 2 to 5 minutes on 2 cores)
#   make coverage      the whole suite under coverage.py (the kernels it starts too), then
#                      the line coverage of greed_kernel by module
#   make test-matrix   the fast tiers and a real-kernel smoke on Python 3.12 and 3.13 (each
#                      in its own .venv-3.X, without torch), where those interpreters exist
#   make labext-check  the JupyterLab extension's CI check (scripts/check_labextension.sh)
#   make demo          the same leaky session on python3 and on greed, side by side
#                      (scripts/demo.py, plot in out/demo/, ignored by git), then `make tour`
#   make docs-pictures the docs' pictures: the demo's plot into docs/demo-memory.png
#   make tour          run notebooks/quickstart.ipynb (the %greed tour) headlessly on greed
#   make lab           JupyterLab on notebooks/ (pick "Greed (PyTorch)")
#   make bench         the benchmarks (greed against python3; about 26 minutes);
#                      NOTEBOOKS=DIR adds real notebooks, killed and resumed
#                      (docs/benchmarks.md says which, and where they come from)
#   make fuzz          the differential run (python3 against greed paging after every
#                      cell) with GREED_FUZZ_EXAMPLES generated programs (default 200)
#   make browser-deps  Chromium and a font for the browser tests (apt-get, as root, only
#                      when missing; run by make test)
#   make test-deps     jemalloc and tcmalloc for the allocator tests (likewise)
#   make labext        rebuild the JupyterLab extension (needs Node.js >= 20.19) into
#                      greed_kernel/labextension

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is installed first, only when the venv has none: a plain version pin that pip
# resolves from its configured index (PyPI's default build, CUDA included on Linux).
# Override for another build, e.g. TORCH_SPEC="torch==2.13.0 --index-url URL".
TORCH_SPEC ?= torch==2.13.0
# The interpreters of `make test-matrix` (versions below requires-python are skipped
# with a note).
MATRIX_PYTHONS ?= 3.10 3.12 3.13
# pytest-xdist workers: one per core and one more, at most 4 (more mostly add kernels
# competing for memory). A worker often waits on a kernel, a browser or a subprocess:
# on 2 cores, 2 workers kept 1.6 cores busy and took 249 to 257 s, 3 workers 218 to
# 232 s. Each test file runs whole on one worker (loadfile), so a module's shared
# kernel stays shared; the files are handed out in their collection order
# (--no-loadscope-reorder): the tier folders in name order, so browser and kernel files
# (the long ones) start first and the many short unit files fill in the gaps. (By
# default xdist hands out the files with the most tests first, the browser files last.)
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); n=$$((n + 1)); [ "$$n" -gt 4 ] && n=4; echo $$n)
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
# The fast tiers: tests/unit and tests/inprocess (each folder's conftest.py marks its
# tests pure, inprocess, kernel or browser).
FAST_TIERS := pure or inprocess
JLPM := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" "$(CURDIR)/$(VENV)/bin/jlpm"

.PHONY: venv install lint test coverage test-fast test-matrix labext-check demo docs-pictures tour lab bench clean \
	browser-deps test-deps labext fuzz

venv install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-run only when the project's metadata or kernel spec changes.
$(STAMP): pyproject.toml greed_kernel/__init__.py greed_kernel/kernelspec.py $(wildcard kernelspec/*) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	# pip writes the extension's shared data through our link into the source tree:
	# drop the link first (made again below)
	[ ! -L $(VENV)/share/jupyter/labextensions/greed-kernel-lab ] || \
		rm $(VENV)/share/jupyter/labextensions/greed-kernel-lab
	$(PY) -m pip install -e ".[torch,dev]"
	$(PY) -m greed_kernel install --sys-prefix
	# an editable install skips the wheel's shared-data: link the prebuilt extension
	# (pip -e copies an old build there as a real directory, which ln -sfn would not replace)
	mkdir -p $(VENV)/share/jupyter/labextensions
	[ -L $(VENV)/share/jupyter/labextensions/greed-kernel-lab ] || \
		rm -rf $(VENV)/share/jupyter/labextensions/greed-kernel-lab
	ln -sfn "$(CURDIR)/greed_kernel/labextension" $(VENV)/share/jupyter/labextensions/greed-kernel-lab
	touch $@

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Debian's chromium for the JupyterLab browser tests: nothing to do (and no root needed)
# when present; apt-get as root when missing; otherwise fails saying what to install.
browser-deps:
	bash scripts/install_browser_deps.sh

# jemalloc and tcmalloc for the allocator tests: nothing to do when present; apt-get as
# root when missing; otherwise fails saying what to install.
test-deps:
	bash scripts/install_test_deps.sh

# The swap tests turn swap on for the whole machine, where every other test's paging
# would use it: they run alone, after the rest.
test: install lint browser-deps test-deps
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not swap"
	$(PY) -m pytest -q -m swap

GREED_FUZZ_EXAMPLES ?= 200
fuzz: install
	GREED_FUZZ_EXAMPLES=$(GREED_FUZZ_EXAMPLES) $(PY) -m pytest -q tests/kernel/test_differential.py

# COVERAGE_FILE is absolute: the kernels run in other directories and write their own
# data files (parallel = true in pyproject.toml), combined here.
# The report is printed even when a test failed; the exit status is pytest's.
coverage: install browser-deps test-deps
	rm -f .coverage .coverage.*
	export COVERAGE_FILE="$(CURDIR)/.coverage"; \
	$(PY) -m coverage run -m pytest -q $(PYTEST_PARALLEL) -m "not swap"; status=$$?; \
	$(PY) -m coverage combine -q && $(PY) -m coverage report; exit $$status

test-fast: install
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "$(FAST_TIERS)"

test-matrix:
	MATRIX_PYTHONS="$(MATRIX_PYTHONS)" PYTEST_MARKERS="($(FAST_TIERS)) or smoke" \
		PYTEST_ARGS="$(PYTEST_PARALLEL)" \
		bash scripts/test_matrix.sh

labext-check: install
	@test -f scripts/check_labextension.sh || { \
		echo "labext-check: scripts/check_labextension.sh is missing" >&2; exit 1; }
	bash scripts/check_labextension.sh

# Run outputs go under out/ (ignored): a demo leaves the checkout clean.
demo: install
	$(PY) scripts/demo.py --out out/demo
	$(MAKE) --no-print-directory tour

# The tracked pictures of docs/, rewritten only on request.
docs-pictures: install
	$(PY) scripts/demo.py --out docs

tour: install
	$(PY) scripts/run_notebook.py notebooks/quickstart.ipynb

lab: install
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)
	$(PY) -m benchmarks.tracking
	$(PY) -m benchmarks.hotpath
	$(PY) -m benchmarks.bytecodes
	$(PY) -m benchmarks.busywork --out docs/benchmarks
	$(PY) -m benchmarks.section --out docs/benchmarks
	$(PY) -m benchmarks.swap --out docs/benchmarks
	$(PY) -m benchmarks.checkpoint --out docs/benchmarks
	$(if $(NOTEBOOKS),$(PY) -m benchmarks.notebooks $(NOTEBOOKS) --out docs/benchmarks)

# Rebuild the extension into greed_kernel/labextension (commit the result). CI never runs
# this: its `make labext-check` rebuilds and fails when the committed build differs.
# Rebuilds into greed_kernel/labextension (in a fixed directory: see the script) and says
# whether the result differs from the committed build, which then has to be committed.
labext: install
	bash scripts/check_labextension.sh

# Leaves the venvs (.venv, .venv-3.X) alone.
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache notebooks/*.executed.ipynb .coverage* out \
		labextension/lib labextension/tsconfig.tsbuildinfo
