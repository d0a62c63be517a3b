"""
Fixtures of the grader's tests: a small subset of the hidden test split, a
valid model, and the jail (grader/jail.py), which must start here. Every result
the grader writes in these tests is checked against Gradescope's results.json
schema (grader/platforms/gradescope_results.schema.json).
"""
import os
import sys

import pytest
from filelock import FileLock

import grader.results
from exercise_code.util.model_files import load_model, save_model
from grader.platforms.gradescope_results import InvalidResults, check_results
from grading_scenarios import trained_model

TEST_ROWS = 64   # faces of the hidden split the tests grade on: enough to score, quick to predict


@pytest.fixture(scope="session", autouse=True)
def invalid_result_writes():
    """
    For the whole session, write_json_atomic checks each result against Gradescope's results.json
    schema before writing it: an invalid one raises InvalidResults and is never written.

    Returns:
    - A list that gets "<path>: <problems>" for each result refused (results_follow_gradescope_spec reads it)

    Session-wide, because module-scoped fixtures (the scenario batch) grade before any function-scoped
    fixture starts. Results written by a subprocess (python -m grader ...) are not seen here.
    """
    original, refused = grader.results.write_json_atomic, []

    def checked_write_json_atomic(path, data):
        document = data.to_json() if isinstance(data, grader.results.Result) else data
        if isinstance(document, dict) and isinstance(document.get("extra_data"), dict) \
                and document["extra_data"].get("grader") == grader.results.GRADER_NAME:   # a result, not other JSON
            try:
                check_results(document)
            except InvalidResults as error:
                refused.append(f"{path}: {error}")
                raise
        return original(path, data)

    # grader.api and the tests hold the function under their own names (from grader.results import ...):
    # replace it wherever it is, not only in grader.results. Modules imported later get the checked one.
    with pytest.MonkeyPatch.context() as patch:
        for module in list(sys.modules.values()):
            if getattr(module, "__dict__", {}).get("write_json_atomic") is original:
                patch.setattr(module, "write_json_atomic", checked_write_json_atomic)
        yield refused


@pytest.fixture(autouse=True)
def results_follow_gradescope_spec(invalid_result_writes):
    """Fails the test if a result written while it ran (or while its fixtures were set up) broke the schema,
    even if the grader caught the InvalidResults that write_json_atomic raised."""
    def fail_on_refused():
        if invalid_result_writes:
            refused = list(invalid_result_writes)
            invalid_result_writes.clear()   # each refusal fails one test only
            pytest.fail("The grader tried to write a result Gradescope would not read:\n" + "\n".join(refused),
                        pytrace=False)

    fail_on_refused()   # refused while a module- or session-scoped fixture graded
    yield
    fail_on_refused()


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


@pytest.fixture
def jail(isolation):
    """For tests that need the jail (the same as `isolation`, named for what the test needs)."""
    return isolation
