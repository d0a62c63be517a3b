"""
Fixtures of the grader's tests: a small subset of the hidden test split, a
valid model, and the jail (grader/jail.py), which must start here.
"""
import os

import pytest
from filelock import FileLock

from exercise_code.util.model_files import load_model, save_model
from grader.sandbox import IsolationError, detect_isolation
from grading_scenarios import trained_model

TEST_ROWS = 64   # faces of the hidden split the tests grade on: enough to score, quick to predict


@pytest.fixture(scope="session")
def hidden_subset(test_data_dir, tmp_path_factory):
    """The first TEST_ROWS faces of the hidden test split, as a CSV in a temporary folder (never in the repo)."""
    lines = (test_data_dir / "test.csv").read_text().splitlines(keepends=True)
    path = tmp_path_factory.mktemp("hidden") / "test.csv"
    path.write_text("".join(lines[: TEST_ROWS + 1]))   # the header, then the rows
    return path


@pytest.fixture(scope="session")
def valid_model(train_set, tmp_path_factory):
    """A KeypointModel that scores above 100 (briefly trained; see grading_scenarios.py). Trained once
    per run: the test processes of `pytest -n 2` share it, as a file in their common temporary folder."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    path = shared / "valid_model.pt"
    with FileLock(f"{path}.lock"):   # the other process waits while this one trains
        if not path.exists():
            save_model(trained_model(train_set), path)
    return load_model(path).eval()


@pytest.fixture(scope="session")
def isolation():
    """The isolation grade() uses by default: the jail. Where it cannot start, tests that grade are
    skipped (the grader would refuse), but never in CI, which must prove the jail works."""
    try:
        return detect_isolation()
    except IsolationError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))


@pytest.fixture
def jail(isolation):
    """For tests that need the jail (the same as `isolation`, named for what the test needs)."""
    return isolation
