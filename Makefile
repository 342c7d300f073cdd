# Greed kernel: developer tasks. Every target is idempotent.
#
#   make install   create .venv (if missing), install the package and the `greed` kernel spec
#   make lint      ruff check + ruff format --check
#   make test      install, lint, then the whole test suite
#   make demo      run notebooks/quickstart.ipynb headlessly on the Greed kernel
#   make lab       JupyterLab on notebooks/ (pick "Greed (PyTorch)")
#   make bench     the benchmarks (greed against python3; about 5 minutes)
#   make browser-deps  Debian chromium for the browser test (run by make test)
#   make labext    rebuild the JupyterLab extension (needs Node.js >= 20.19) into greed_kernel/labextension

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch 2.13.0; override e.g. TORCH_SPEC="torch==2.13.0 --index-url URL".
TORCH_SPEC ?= torch==2.13.0
JLPM := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" "$(CURDIR)/$(VENV)/bin/jlpm"

.PHONY: venv install lint test demo lab bench clean browser-deps labext

venv install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-run only when the project's metadata or kernel spec changes.
$(STAMP): pyproject.toml greed_kernel/__init__.py greed_kernel/kernelspec.py $(wildcard kernelspec/*) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[torch,test,lab]"
	$(PY) -m greed_kernel install --sys-prefix
	# an editable install skips the wheel's shared-data: link the prebuilt extension
	mkdir -p $(VENV)/share/jupyter/labextensions
	ln -sfn "$(CURDIR)/greed_kernel/labextension" $(VENV)/share/jupyter/labextensions/greed-kernel-lab
	touch $@

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Debian's chromium for the JupyterLab browser test (installed when missing, as root).
browser-deps:
	bash scripts/install_browser_deps.sh

test: install lint browser-deps
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	$(PY) scripts/run_notebook.py notebooks/quickstart.ipynb

lab: install
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)
	$(PY) -m benchmarks.tracking

# The extension's committed build; CI uses it as it is and never runs this.
labext: install
	cd labextension && $(JLPM) install --immutable && $(JLPM) build:prod && $(JLPM) test --ci

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache notebooks/*.executed.ipynb \
		labextension/lib labextension/tsconfig.tsbuildinfo
