# Two commands do all the set-up (see README):
#   make demo   create .venv, install kwlesson, train a model on the built-in offline dataset
#   make test   create .venv, install kwlesson and its test tools, lint, run the unit tests and
#               the notebooks (nbval)
# Other targets: make lab (open the course in JupyterLab), make benchmarks, make clean,
# make test-python (unit tests and two lessons on one more Python: PYTHON=... VENV=...).

# The Pythons kwlesson supports (pyproject's requires-python), newest first; the first one that
# runs here is used, unless PYTHON is given (make test PYTHON=python3.12).
PYTHONS := python3.13 python3.12 python3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(firstword $(foreach p,$(PYTHONS),$(shell $(p) -c "" >/dev/null 2>&1 && command -v $(p)))),python3)
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kwlesson-installed

.PHONY: demo test test-python lab benchmarks student-copies clean install

install: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = "python%d.%d" % sys.version_info[:2]; sys.exit(0 if v in "$(PYTHONS)".split() else "kwlesson needs one of $(PYTHONS); $(PYTHON) is " + v + ": run make with PYTHON=python3.12 (say)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import kwlesson, tensorflow, librosa, espeakng_loader, ai_edge_litert"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kwlesson train

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# One more Python, quickly: the unit tests (not the browser ones, not the slow multi-worker
# one) and two lessons.
QUICK_LESSONS := notebooks/00_welcome.ipynb notebooks/02_the_dataset_and_its_splits.ipynb
test-python: $(STAMP)
	$(BIN)/python -m pytest tests -m "not browser and not slow" -q
	$(BIN)/python -m pytest $(QUICK_LESSONS) -q

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

benchmarks: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
