"""
The grader on one batch of submissions, one scenario each (see grading_scenarios.py):
every honest submission gets its score, every broken or malicious one a clear
zero in its own result, and the batch goes on. The batch is graded once, with
two jobs, and each test looks at one part of what came out.
"""
import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from exercise_code.data import FacialKeypointsDataset
from exercise_code.evaluation import evaluate_model
from exercise_code.util.limits import MAX_PARAMETERS
from exercise_code.util.model_files import load_model
from exercise_code.util.submission import MODEL_ENTRY
from grader.api import grade
from grader.jail import BASE_ENV
from grader.pipeline import CHECKS
from grader.results import failed_check
from hostile_students import Listener
from grading_scenarios import SCENARIOS, build_submission

pytestmark = pytest.mark.slow

TIMEOUT_S = 30       # room for starting torch on a busy machine; the sleeper waits this long
MEMORY_MB = 1536     # the model needs ~500 MB; the memory hog asks for 8 GB
HONEST = [name for name, expected in SCENARIOS.items() if expected is None]
BROKEN = [name for name, expected in SCENARIOS.items() if expected is not None]


@pytest.fixture(scope="module")
def batch(valid_model, hidden_subset, test_data_dir, test_zip, tmp_path_factory):
    """Build every scenario, grade them all in one run, and keep what the tests look at."""
    root = tmp_path_factory.mktemp("batch")
    listener = Listener()   # the spy tries to reach it
    hidden = [hidden_subset, test_data_dir / "test.csv", test_zip]
    paths = {name: build_submission(name, root, valid_model, spy_targets=hidden, spy_port=listener.port,
                                    marker=root / "payload-ran") for name in SCENARIOS}
    results = grade(submissions=[root / "submissions", paths["valid_folder"]], test_data=hidden_subset,
                    out_dir=root / "out", jobs=2, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB,
                    scratch_dir=root / "scratch")
    return SimpleNamespace(root=root, results={r["extra_data"]["submission"]: r for r in results},
                           connections=listener.connections(), hidden=hidden, paths=paths)


def output_of(result, check):
    return next(test for test in result["tests"] if test["name"] == CHECKS[check])["output"]


def spy_says(batch, what):
    """The rest of the line the spy printed to stderr starting with `spy: <what> `."""
    lines = output_of(batch.results["spy"], "predictions").splitlines()
    return next(line for line in lines if line.startswith(f"spy: {what} ")).removeprefix(f"spy: {what} ")


def test_every_scenario_has_a_result(batch):
    """Did the batch go on through every failure, with one result file per submission?"""
    assert sorted(batch.results) == sorted(SCENARIOS)
    assert sorted(p.stem for p in (batch.root / "out").glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", BROKEN)
def test_broken_submission_gets_a_clear_zero(batch, scenario):
    """Is a broken or malicious submission scored 0, failing the right check with a message that says why?"""
    check, words = SCENARIOS[scenario]
    result = batch.results[scenario]
    failed = failed_check(result)
    assert result["score"] == 0 and result["extra_data"]["raw_score"] is None
    assert failed["name"] == CHECKS[check], failed
    assert words in failed["output"], failed["output"]
    assert words in result["output"]                     # the summary the student reads first says it too
    names = list(CHECKS.values())
    before = [t for t in result["tests"] if names.index(t["name"]) < names.index(failed["name"])]
    assert all(t["status"] == "passed" for t in before)   # everything up to the failure passed
    assert not result["extra_data"]["grader_error"]        # the student's fault, not ours


@pytest.mark.parametrize("scenario", HONEST)
def test_honest_submission_gets_full_points(batch, scenario):
    """Does every honest submission (zip, folder, zipped folder, chatty, spying) get full points?"""
    result = batch.results[scenario]
    assert result["score"] == 100 and all(t["status"] == "passed" for t in result["tests"]), result["output"]
    assert result["extra_data"]["raw_score"] >= 100
    assert result["leaderboard"] == [{"name": "1/(2*MSE)", "value": result["extra_data"]["raw_score"],
                                      "order": "desc"}]


def test_score_is_exactly_evaluate_model(batch, hidden_subset):
    """Is the grader's score the very number evaluate_model gives for the same model on the same faces?"""
    model = load_model(batch.root / "workspaces" / "valid" / MODEL_ENTRY)
    expected = evaluate_model(model, FacialKeypointsDataset(hidden_subset, use_cache=False))
    assert batch.results["valid"]["extra_data"]["raw_score"] == expected
    assert batch.results["valid_folder"]["extra_data"]["raw_score"] == expected   # same model, as a folder


def test_weights_that_do_not_fit_are_listed(batch):
    """When the saved weights do not fit the submitted model, does the student see which keys are missing?"""
    output = output_of(batch.results["state_dict_mismatch"], "code")
    assert 'Missing key(s) in state_dict: "down.2.1.0.weight"' in output and "size mismatch for lateral.0.weight" in output


def test_pickle_payload_never_ran(batch):
    """Was the code in the pickled payload never run, by the parent or anyone?"""
    assert not (batch.root / "payload-ran").exists()


def test_nothing_is_written_outside_the_scratch_folder(batch):
    """Did the zip-slip and absolute-path entries land nowhere, and is the scratch folder empty afterwards?"""
    everything = [p.name for p in batch.root.rglob("*")]
    assert "evil_slip.py" not in everything and "evil_absolute.py" not in everything
    assert not Path("/evil_slip.py").exists()
    assert list((batch.root / "scratch").iterdir()) == []


def test_stderr_output_costs_nothing(batch):
    """Is a submission that prints to stderr scored in full, with its output shown to its author?"""
    result = batch.results["stderr_chatter"]
    assert result["score"] == 100
    assert "debug: batch of 64" in output_of(result, "predictions")


@pytest.mark.jail
def test_spy_cannot_reach_the_labels_or_the_network(batch, jail):
    """Does a submission that opens the hidden test file, scans the disk for it and dials out get nothing?"""
    output = output_of(batch.results["spy"], "predictions")
    assert "spy: found []" in output, output
    for path in batch.hidden:
        assert f"spy: cannot open {path}: FileNotFoundError" in output
    assert "spy: network blocked" in output and batch.connections == 0
    assert not any(str(p.parent) in spy_says(batch, "environment") for p in batch.hidden)  # nor in env or argv
    assert batch.results["spy"]["extra_data"]["raw_score"] == batch.results["valid"]["extra_data"]["raw_score"]


@pytest.mark.jail
def test_worker_runs_unprivileged_within_limits(batch, jail):
    """Does the student's code run as an unprivileged user, in its scratch folder, under the rlimits?"""
    words = spy_says(batch, "uid").split(" ", 4)   # "<uid> cwd <cwd> limits <json>"
    uid, cwd, limits = int(words[0]), words[2], json.loads(words[4])
    assert cwd.startswith(str(batch.root / "scratch")) and cwd.endswith("/work")   # its own, empty, writable
    assert limits["RLIMIT_AS"] == MEMORY_MB * 2 ** 20 and limits["RLIMIT_CPU"] == TIMEOUT_S + 10
    assert limits["RLIMIT_FSIZE"] > 0 and 0 < limits["RLIMIT_NPROC"] <= 256
    if os.geteuid() == 0:   # as root the jail drops to a fresh uid of its own
        assert uid >= 200_000


def test_timeout_leaves_no_process_behind(batch):
    """After the batch, is every worker gone, the one that slept forever included?"""
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            if str(batch.root).encode() in (proc / "cmdline").read_bytes():
                leftovers.append(proc.name)
        except OSError:
            continue
    assert leftovers == []
    assert batch.results["sleeps_forever"]["execution_time"] < TIMEOUT_S + 15


def test_results_are_gradescope_shaped(batch):
    """Is every result file strict JSON in the shape of Gradescope's results.json?"""
    for path in (batch.root / "out").glob("*.json"):
        result = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{path}: {name}"))
        assert {"score", "execution_time", "output", "tests", "leaderboard", "extra_data"} <= set(result)
        assert [t["name"] for t in result["tests"]] == list(CHECKS.values())
        for test in result["tests"]:
            assert set(test) == {"name", "status", "score", "max_score", "output"} and test["output"]
            assert test["status"] in ("passed", "failed")
        assert sum(t["max_score"] for t in result["tests"]) == 100 and result["execution_time"] > 0


def test_gradebook_ranks_every_submission(batch):
    """Do grades.csv and leaderboard.md hold every submission, best score first, unscored ones last?"""
    with open(batch.root / "out" / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["submission"] for row in rows) == sorted(SCENARIOS)
    scores = [float(row["raw_score"]) for row in rows if row["raw_score"]]
    assert len(scores) == len(HONEST) and scores == sorted(scores, reverse=True)
    assert rows[-1]["raw_score"] == "" and rows[-1]["status"].startswith("failed: ")
    board = (batch.root / "out" / "leaderboard.md").read_text()
    assert "| 1 |" in board and f"{len(HONEST)} scored, {len(BROKEN)} not scored" in board


def test_every_result_records_its_isolation(batch, isolation):
    """Does every result say which isolation was in force?"""
    assert {r["extra_data"]["isolation"] for r in batch.results.values()} == {isolation}


def test_parameter_limit_is_the_packs(batch):
    """Is the 5,000,001-parameter model refused by the pack's own limit (no second copy of the number)?"""
    assert f"fewer than {MAX_PARAMETERS:,}" in output_of(batch.results["too_many_parameters"], "parameters")


def test_worker_environment_is_minimal(batch):
    """Does the worker's environment hold only what we set (nothing inherited: no PATH extras, no secrets)?"""
    environment = json.loads(spy_says(batch, "environment").split(" argv ")[0])
    assert set(environment) <= {*BASE_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "LC_CTYPE", "PWD"}, environment   # bwrap sets PWD to the working folder
    assert os.environ.get("HOME") != environment["HOME"]
