# The two commands of the pack (see README.md):
#   make demo   set up .venv, then run the main job end to end
#   make test   set up .venv, then run the tests
#   make test-fast   the edit loop: every test but the slow ones (a few minutes)
# Data sources can be overridden: make demo FACIAL_KEYPOINTS_SOURCE=https://.../facial_keypoints.zip

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export FACIAL_KEYPOINTS_SOURCE ?= ../shared/datasets/facial_keypoints.zip
export FACIAL_KEYPOINTS_TEST_SOURCE ?= ../shared/datasets/facial_keypoints_test.zip
export MPLBACKEND ?= Agg

.PHONY: demo test test-fast data setup jail-deps browser-deps clean

demo: setup
	$(PY) solutions/end_to_end.py $(DEMO_ARGS)

# pytest's own script, not `python -m pytest`: that would put the repo root first on sys.path,
# and with it the student copy of exercise_code/ instead of the installed, solved one.
# Two test processes, one per core; each takes whole test files, longest first (tests/conftest.py).
PARALLEL := -n 2 --dist loadfile --no-loadscope-reorder
test: setup
	$(VENV)/bin/pytest $(PARALLEL)

test-fast: setup
	$(VENV)/bin/pytest $(PARALLEL) -m "not slow"

setup: jail-deps browser-deps $(VENV)/.installed

# Student code is graded in a bubblewrap jail with a libseccomp filter (grader/jail.py), on Linux.
JAIL_MISSING := $(if $(shell which bwrap 2>/dev/null),,bubblewrap) $(if $(wildcard /usr/lib/*/libseccomp.so.2),,libseccomp2)
jail-deps:
ifeq ($(shell uname -s),Linux)
ifneq ($(strip $(JAIL_MISSING)),)
	@if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y bubblewrap libseccomp2; \
	else echo "Grading needs $(strip $(JAIL_MISSING)): as root, run apt-get install $(strip $(JAIL_MISSING))"; exit 1; fi
endif
endif

# The browser tests (tests/browser/) drive Debian's Chromium through Playwright: never `playwright install`,
# which downloads browsers of its own. As root we install it with apt; elsewhere we say what to install (without
# it those tests are skipped, but fail in CI).
BROWSER_MISSING := $(if $(shell which chromium 2>/dev/null),,chromium) $(if $(shell which chromedriver 2>/dev/null),,chromium-driver)
browser-deps:
ifneq ($(strip $(BROWSER_MISSING)),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update && apt-get install -y chromium chromium-driver; \
	else echo "The browser tests need $(strip $(BROWSER_MISSING)): as root, run apt-get install $(strip $(BROWSER_MISSING))"; fi
endif

# torch goes in first, at its pin in constraints.txt: an unpinned torch would pull gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch -c constraints.txt
	$(PY) -m pip install --quiet -e ".[dev,cluster]" -c constraints.txt
	# With rfc3987-syntax installed, importing jsonschema builds 35 parsers (jsonschema issue #1428): 3 s in
	# every process that reads a notebook. No Jupyter schema uses the formats it checks.
	$(PY) -m pip uninstall --quiet --yes rfc3987-syntax
	$(PY) -P -m grader.kernel_jail install   # -P: not the student copy of exercise_code in this folder
	touch $@

# The course data from the public Udacity P1 data (README, "Making the course data"): a local zip or folder,
# or a URL. Then: make demo FACIAL_KEYPOINTS_SOURCE=datasets/built/facial_keypoints.zip \
#                          FACIAL_KEYPOINTS_TEST_SOURCE=datasets/built/facial_keypoints_test.zip
UDACITY_DATA ?= https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/5aea1b91_train-test-data/train-test-data.zip
data: setup
	$(PY) -P -m grader dataset --from udacity $(UDACITY_DATA) --out datasets/built $(DATA_ARGS)

clean:
	rm -rf build .pytest_cache
