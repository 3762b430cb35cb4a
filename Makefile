# Two commands do all the set-up (see README):
#   make demo   create .venv, install kwlesson, train a model on the built-in offline dataset
#   make test   create .venv, install kwlesson, run the unit tests and the notebooks (nbval)
# Other targets: make lab (open the course in JupyterLab), make benchmarks, make clean.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kwlesson-installed

.PHONY: demo test lab benchmarks student-copies clean install

install: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "kwlesson needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -c "import kwlesson, tensorflow, librosa, espeakng_loader, ai_edge_litert"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kwlesson train

test: $(STAMP)
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

benchmarks: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
