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
# llama.cpp's own server, built once from the llama.cpp that the same sdist vendors
# (so server and embedded backend run the same ggml), linked statically so the one
# binary needs no libggml*.so beside it; the build is kept in .wheels like the wheel.
LLAMA_SDIST := $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
LLAMA_SERVER_BUILD := $(WHEELS)/llama-server-$(LLAMA_CPP_VERSION)
LLAMA_SERVER_STAMP := $(LLAMA_SERVER_BUILD).built
LLAMA_SERVER := $(BIN)/llama-server
LLAMA_SERVER_CMAKE_ARGS := $(LLAMA_CMAKE_ARGS) -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON \
	-DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release
PIP := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install -c constraints.txt --find-links $(WHEELS)

.PHONY: venv llama-server demo test lint format bench clean labextension

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

llama-server: $(LLAMA_SERVER)

$(LLAMA_SDIST): | $(BIN)/python
	mkdir -p $(WHEELS)
	$(PIP) download --no-deps --no-binary :all: -d $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)

$(LLAMA_SERVER_STAMP): $(LLAMA_SDIST)
	rm -rf $(LLAMA_SERVER_BUILD) && mkdir -p $(LLAMA_SERVER_BUILD)
	tar -xzf $(LLAMA_SDIST) -C $(LLAMA_SERVER_BUILD) --strip-components=1
	cmake -S $(LLAMA_SERVER_BUILD)/vendor/llama.cpp -B $(LLAMA_SERVER_BUILD)/build $(LLAMA_SERVER_CMAKE_ARGS)
	cmake --build $(LLAMA_SERVER_BUILD)/build --target llama-server -j2
	touch $@

$(LLAMA_SERVER): $(LLAMA_SERVER_STAMP) | $(BIN)/python
	cp $(LLAMA_SERVER_BUILD)/build/bin/llama-server $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py --fresh

test: $(VENV)/.installed $(LLAMA_SERVER)
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
