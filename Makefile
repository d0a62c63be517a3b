# The two commands of the pack (see README.md):
#   make demo   set up .venv, then run the main job end to end
#   make test   set up .venv, then run the tests
# Data sources can be overridden: make demo FACIAL_KEYPOINTS_SOURCE=https://.../facial_keypoints.zip

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export FACIAL_KEYPOINTS_SOURCE ?= ../shared/datasets/facial_keypoints.zip
export FACIAL_KEYPOINTS_TEST_SOURCE ?= ../shared/datasets/facial_keypoints_test.zip
export MPLBACKEND ?= Agg

.PHONY: demo test setup clean

demo: setup
	$(PY) solutions/end_to_end.py $(DEMO_ARGS)

test: setup
	$(PY) -m pytest

setup: $(VENV)/.installed

# torch goes in first, pinned: an unpinned torch would pull gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]" -c constraints.txt
	touch $@

clean:
	rm -rf build .pytest_cache
