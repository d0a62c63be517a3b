"""
The graded checks decided by trusted code (grader/trusted_checks.py): the student's
functions run in the jail on the grader's own inputs, and only their raw outputs
come back. Right work passes, wrong or missing work fails, and nothing a
submission does to the checks themselves helps it.
"""
import shutil

import pytest

from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY
from grader import jail
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
