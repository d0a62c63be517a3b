"""
The graded checks decided by trusted code (grader/trusted_checks.py): the student's
functions run in the jail on the grader's own inputs, and only their raw outputs
come back. Right work passes, wrong or missing work fails, and nothing a
submission does to the checks themselves helps it.
"""
import json
import shutil

import pytest

from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY
from grader import jail, pipeline
from grader.api import grade
from grader.release import STUDENT_PACKAGE
from grader.trusted_checks import CELLS, run_checks
from grading_scenarios import SMALL

pytestmark = pytest.mark.slow
QUICK = jail.Limits(timeout_s=20, memory_mb=4096)   # room for torch on a busy machine; the sleeper waits this long


@pytest.fixture(scope="module")
def solved(tmp_path_factory, isolation, solved_workspace):
    """A submission with every TODO solved and a small saved model."""
    pack = solved_workspace(tmp_path_factory.mktemp("solved") / "pack")
    save_model(KeypointModel(SMALL).eval(), pack / MODEL_ENTRY)
    return pack


def variant(solved, tmp_path, edits):
    """A copy of the solved submission with files of exercise_code/ appended to ({path: code})."""
    pack = tmp_path / "pack"
    shutil.copytree(solved, pack)
    for path, code in edits.items():
        file = pack / "exercise_code" / path
        file.write_text(file.read_text() + code)
    return pack


def check(pack):
    results = run_checks(pack, list(CELLS), isolation="jail", limits=QUICK)
    return {cell: result.passed for cell, result in results.items()}, results


def test_solved_work_passes_every_check(solved):
    """Does the reference solution pass every trusted check, with a PASS line for each?"""
    passed, results = check(solved)
    assert all(passed.values()), {cell: r.text() for cell, r in results.items()}
    assert "PASS the transform gets keypoints in pixels" in results["dataset_checks"].text()


def test_untouched_todos_pass_nothing(tmp_path):
    """Does the student release, TODOs untouched and no model, fail every check, saying why?"""
    shutil.copytree(STUDENT_PACKAGE, tmp_path / "exercise_code")
    passed, results = check(tmp_path)
    assert not any(passed.values())
    assert "NotImplementedError" in results["spatial_batchnorm_forward_checks"].text()
    assert "has no models/keypoint_model.pt" in results["model_checks"].text()


def test_edited_checks_change_nothing(solved, tmp_path):
    """A student who rewrites exercise_code/checks to say PASS, with a wrong forward pass: still FAIL?"""
    pack = variant(solved, tmp_path, {
        "layers.py": "\n\ndef spatial_batchnorm_forward(x, gamma, beta, bn_param):\n    return x, None\n",
        "checks/spatial_batchnorm_checks.py": "\n\ndef test_spatial_batchnorm_forward():\n    return 3, 3\n"})
    passed, results = check(pack)
    assert not passed["spatial_batchnorm_forward_checks"], results["spatial_batchnorm_forward_checks"].text()
    assert passed["dataset_checks"] and passed["model_checks"]


def test_wrong_scaling_and_shared_tensors_fail(solved, tmp_path):
    """Are keypoints in pixels, or samples that share the dataset's tensors, caught?"""
    pack = variant(solved, tmp_path, {"data/facial_keypoints_dataset.py": (
        "\n\ndef _getitem(self, index):\n"
        "    return {'image': self.images[index], 'keypoints': self.keypoints[index]}   # no copy, no scaling\n"
        "\n\nFacialKeypointsDataset.__getitem__ = _getitem\n")})
    passed, results = check(pack)
    assert not passed["dataset_checks"] and "unit coordinates" in results["dataset_checks"].text()


def test_a_hanging_check_fails_alone(solved, tmp_path):
    """If the dataset hangs forever, does it alone fail, the other checks running in a fresh jail?"""
    pack = variant(solved, tmp_path, {"data/facial_keypoints_dataset.py": (
        "\n\nimport time\n\n\ndef _hang(self, index):\n    time.sleep(10 ** 6)\n"
        "\n\nFacialKeypointsDataset.__getitem__ = _hang\n")})
    passed, results = check(pack)
    assert not passed["dataset_checks"] and "did not finish this check in time" in results["dataset_checks"].text()
    assert passed["model_checks"] and passed["spatial_batchnorm_backward_checks"]


def test_a_missing_model_fails_the_model_checks_alone(solved, tmp_path):
    """Without models/keypoint_model.pt, do the model checks fail, saying so, while the other checks pass?"""
    pack = variant(solved, tmp_path, {})
    (pack / MODEL_ENTRY).unlink()
    passed, results = check(pack)
    assert not passed["model_checks"] and "keypoint_model.pt" in results["model_checks"].text()
    assert passed["dataset_checks"] and passed["spatial_batchnorm_forward_checks"]


def test_forged_result_file_earns_nothing(solved, tmp_path):
    """Code that overwrites the worker's result file at import with made-up outputs: failed, not a crash?"""
    pack = variant(solved, tmp_path, {"networks/__init__.py": (
        "\nimport json, sys\n"
        "_spec = json.loads(sys.argv[1])\n"
        "with open(_spec['result'], 'w') as _f:\n"
        "    for _p in _spec['probes']:\n"
        "        _f.write(json.dumps({'probe': _p, 'ok': True, 'outputs': {}}) + '\\n')\n")})
    passed, results = check(pack)
    assert not any(passed.values()), {cell: r.text() for cell, r in results.items()}


def test_isolation_none_asked_for_by_name_gives_the_same_verdicts(solved):
    """With isolation "none" (only ever by name), do the same checks run, with the same verdicts?"""
    results = run_checks(solved, list(CELLS), isolation="none", limits=QUICK)
    assert all(result.passed for result in results.values()), {c: r.text() for c, r in results.items()}


# --- The checks run by the model's own worker (grader.api.grade(checks=...)), as nbgrader's autograde asks.

def grade_with_checks(pack, hidden, out, monkeypatch, timeout_s=60):
    """grade() of one submission with every trusted check; the check worker must not be needed."""
    monkeypatch.setattr(pipeline, "CHECK_LIMITS", QUICK)
    ran = []
    monkeypatch.setattr(pipeline, "run_checks", lambda submission, cells, **kwargs: ran.append(cells) or
                        run_checks(submission, cells, limits=QUICK, **kwargs))
    [result] = grade(submissions={"s": pack}, test_data=hidden, out_dir=out, checks=tuple(CELLS), timeout_s=timeout_s)
    checks = result["extra_data"]["trusted_checks"]
    return result, {cell: check["passed"] for cell, check in checks.items()}, checks, ran


def test_the_models_worker_runs_the_checks(solved, hidden_subset, tmp_path, monkeypatch):
    """With the checks asked for, does one worker score the model and bring back every check's verdict?"""
    result, passed, checks, ran = grade_with_checks(solved, hidden_subset, tmp_path / "out", monkeypatch)
    assert result["extra_data"]["raw_score"] is not None
    assert passed == dict.fromkeys(CELLS, True), checks
    assert ran == []   # no check worker: the model's worker ran them all


def test_a_hanging_check_costs_the_model_nothing(solved, hidden_subset, tmp_path, monkeypatch):
    """A dataset that hangs after the model predicted: is the model scored, the dataset alone failed?"""
    pack = variant(solved, tmp_path, {"data/facial_keypoints_dataset.py": (
        "\n\nimport time\n\n\ndef _hang(self, index):\n    time.sleep(10 ** 6)\n"
        "\n\nFacialKeypointsDataset.__getitem__ = _hang\n")})
    result, passed, checks, ran = grade_with_checks(pack, hidden_subset, tmp_path / "out", monkeypatch)
    assert result["extra_data"]["raw_score"] is not None
    assert not passed["dataset_checks"] and "did not finish this check in time" in checks["dataset_checks"]["lines"][-1]
    assert passed["model_checks"] and passed["spatial_batchnorm_forward_checks"]
    assert ran == [[cell for cell in sorted(CELLS) if cell != "dataset_checks"]]   # the rest, in a fresh jail


def test_the_model_never_gets_the_checks_time(solved, hidden_subset, tmp_path, monkeypatch):
    """
    A model that writes a made-up result at import, then predicts past its deadline and sends
    real predictions: is the result the one there at the deadline, not the late one?
    """
    pack = variant(solved, tmp_path, {"networks/__init__.py": (
        "\nimport json, sys, time\n"
        "_spec = json.loads(sys.argv[1])\n"
        "with open(_spec['result_fd'], 'w', closefd=False) as _f:\n"
        "    _f.write(json.dumps({'ok': True, 'shape': [1, 30], 'predictions': [0.0] * 30}) + '\\n')\n"
        "from exercise_code.networks.keypoint_nn import KeypointModel as _Model\n"
        "_honest = _Model.forward\n"
        "_Model.forward = lambda self, x: (time.sleep(12), _honest(self, x))[1]\n")})
    result, passed, checks, ran = grade_with_checks(pack, hidden_subset, tmp_path / "out", monkeypatch, timeout_s=8)
    assert result["extra_data"]["raw_score"] is None   # the made-up result: one face, not the test split's
    assert "(1, 30)" in result["output"], result["output"]
    assert not (tmp_path / "out" / "predictions" / "s.npy").exists()


def test_a_model_that_fails_still_gets_its_checks(solved, hidden_subset, tmp_path, monkeypatch):
    """No model file (the worker never starts): are the other checks still graded, the model's failed?"""
    pack = variant(solved, tmp_path, {})
    (pack / MODEL_ENTRY).unlink()
    result, passed, checks, ran = grade_with_checks(pack, hidden_subset, tmp_path / "out", monkeypatch)
    assert result["extra_data"]["raw_score"] is None
    assert passed == {**dict.fromkeys(CELLS, True), "model_checks": False}, checks
    assert ran == [sorted(CELLS)]
    assert json.loads((tmp_path / "out" / "s.json").read_text())["extra_data"]["trusted_checks"] == checks
