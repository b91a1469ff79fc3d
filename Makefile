# Quick start:  make demo   (illustrated example on the embedded default model)
#               make test   (the whole suite)
# Each sets up .venv itself.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
WHEELS := .wheels
LLAMA_CPP_VERSION := 0.3.36
# The native build targets this CPU's AMX instructions and segfaults in ggml's
# AMX matmul on quantized models: build a portable one, once, and keep the wheel.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_WHEEL_STAMP := $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION).built
PIP := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install -c constraints.txt --find-links $(WHEELS)

.PHONY: venv demo test lint format bench clean labextension

venv: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip wheel setuptools

$(LLAMA_WHEEL_STAMP): | $(BIN)/python
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

$(VENV)/.installed: pyproject.toml constraints.txt $(LLAMA_WHEEL_STAMP)
	$(PIP_INSTALL) -e '.[all,dev]'
	# An editable install skips data files: enable the Jupyter parts by hand, as a wheel would.
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp jupyter_ext/etc/jupyter_xcomposer.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	mkdir -p $(VENV)/share/jupyter/labextensions
	ln -sfn $(CURDIR)/jupyter_ext/labextension $(VENV)/share/jupyter/labextensions/jupyter-xcomposer
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py --fresh

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The JupyterLab extension: TypeScript in jupyter_ext/lab/, built by @jupyterlab/builder into
# jupyter_ext/labextension/ (committed: installing and CI need no Node.js). Needs Node 20.
labextension: $(VENV)/.installed
	cd jupyter_ext/lab && PATH=$(CURDIR)/$(BIN):$$PATH jlpm install && PATH=$(CURDIR)/$(BIN):$$PATH jlpm clean && PATH=$(CURDIR)/$(BIN):$$PATH jlpm build

bench: $(VENV)/.installed
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info examples/site
