"""
Gradescope without Gradescope: the autograder zip is built, unpacked into a
temporary tree laid out as /autograder (its root a setting, as otter-grader's
`otter run` does), and its own run_autograder runs there for a valid, a failing,
a crashing, a timed-out and a missing submission, and with the jail unavailable.
Every results.json must pass the schema of gradescope_results.py.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.cli import main
from grader.messages import TITLES
from grader.platforms.container import RUNTIME_PACKAGES
from grader.platforms.gradescope import student_name
from grader.platforms.gradescope_results import check_results
from grading_scenarios import patch_forward, valid_workspace, zip_folder

pytestmark = pytest.mark.slow

TIMEOUT_S = 20   # the student's code: room for torch's start on a busy machine


def build(out, hidden_subset, *options):
    """`python -m grader gradescope build` into out; the zip's path."""
    assert main(["gradescope", "build", "--test-data", str(hidden_subset), "--out", str(out),
                 "--timeout", str(TIMEOUT_S), *options]) == 0
    return out


@pytest.fixture(scope="module")
def autograder_zip(hidden_subset, tmp_path_factory):
    return build(tmp_path_factory.mktemp("gradescope") / "autograder.zip", hidden_subset,
                 "--score-visibility", "after_due_date")


@pytest.fixture(scope="module")
def workspace(valid_model, tmp_path_factory):
    return valid_workspace(tmp_path_factory.mktemp("student") / "ws", valid_model)


def lay_out(root, autograder_zip, upload=None):
    """An /autograder tree: source/ (the unpacked zip), submission/ (the upload: files copied in, or a zip),
    submission_metadata.json."""
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
    (root / "source" / "run_autograder").chmod(0o755)   # Gradescope's chmod +x (extractall keeps no modes)
    submission = root / "submission"
    if upload is None:
        submission.mkdir()
    elif upload.is_dir():
        shutil.copytree(upload, submission)
    else:
        submission.mkdir()
        shutil.copyfile(upload, submission / upload.name)
    (root / "submission_metadata.json").write_text(json.dumps(
        {"users": [{"email": "ada@example.edu", "id": "4711", "name": "Ada L."}],
         "assignment": {"total_points": 100.0}, "previous_submissions": []}))
    return root


def run_autograder(root, **env):
    """Gradescope's step: run_autograder as root, cwd root. Returns (results.json as a dict, its process)."""
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "GRADER_PYTHON": sys.executable, **env}
    run = subprocess.run([str(root / "source" / "run_autograder")], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = list((root / "results").iterdir())
    assert [p.name for p in results] == ["results.json"], results   # exactly one file, nothing half-written
    data = json.loads(results[0].read_text())
    check_results(data)
    return data, run


def row(data, check):
    return next(test for test in data["tests"] if test["name"] == TITLES[check])


def test_the_zip_has_what_gradescope_needs(autograder_zip, hidden_subset):
    """Scripts at the root, executable, LF endings; the pinned environment; the grader with the solved
    exercise_code; the hidden split; a fallback result that is valid."""
    with zipfile.ZipFile(autograder_zip) as archive:
        names = archive.namelist()
        for script in ("setup.sh", "run_autograder"):
            info = archive.getinfo(script)
            assert (info.external_attr >> 16) & 0o777 == 0o755
            text = archive.read(script)
            assert b"\r" not in text and text.startswith(b"#!/usr/bin/env bash\n")
        setup = archive.read("setup.sh").decode()
        requirements = archive.read("requirements.txt").decode().split()
        assert archive.read("hidden/test.csv") == hidden_subset.read_bytes()
        assert "### BEGIN SOLUTION" in archive.read("pack/exercise_code/layers.py").decode()
        check_results(json.loads(archive.read("fallback_results.json")))
        settings = json.loads(archive.read("settings.json"))
    assert "python3.11" in setup and "torch==" in setup and "download.pytorch.org/whl/cpu" in setup
    assert all("==" in line for line in requirements) and not any(r.startswith("torch") for r in requirements)
    assert {line.split("==")[0] for line in requirements} == set(RUNTIME_PACKAGES)
    assert "pack/grader/platforms/gradescope.py" in names and "pack/grader/worker.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert settings["timeout_s"] == TIMEOUT_S and settings["score_visibility"] == "after_due_date"


def test_a_valid_zip_is_graded(autograder_zip, workspace, tmp_path):
    """The uploaded zip: full points, the student named by email, the score row shown after the due date,
    the grader's log hidden, the secrets root's alone."""
    upload = zip_folder(workspace, tmp_path / "submission.zip")
    root = lay_out(tmp_path / "autograder", autograder_zip, upload)
    data, _ = run_autograder(root)
    assert data["score"] == 100.0 and data["extra_data"]["raw_score"] > 100
    assert data["extra_data"]["submission"] == "ada_example.edu"
    assert data["extra_data"]["isolation"] == "jail"
    assert row(data, "score")["visibility"] == "after_due_date" and row(data, "unpack")["visibility"] == "visible"
    shown = json.dumps({key: value for key, value in data.items() if key not in ("tests", "extra_data")})
    assert "leaderboard" not in data and "1/(2*MSE)" not in shown and "after due date" in data["output"]
    assert data["stdout_visibility"] == "hidden" and isinstance(data["execution_time"], int)
    for path in [root / "source" / "hidden" / "test.csv", root / "source" / "pack" / "grader",
                 root / "submission", root / "submission_metadata.json", root / "results"]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_unpacked_files_are_graded_the_same(autograder_zip, workspace, tmp_path):
    """The zip's files uploaded one by one (or unpacked by Gradescope): the same score as the zip."""
    zipped, _ = run_autograder(lay_out(tmp_path / "zipped", autograder_zip,
                                       zip_folder(workspace, tmp_path / "submission.zip")))
    files, _ = run_autograder(lay_out(tmp_path / "files", autograder_zip, workspace))
    assert files["score"] == zipped["score"] == 100.0
    assert files["extra_data"]["raw_score"] == zipped["extra_data"]["raw_score"]


def test_a_failing_submission_says_why(autograder_zip, valid_model, tmp_path):
    """Predictions of the wrong shape: 0 points, and the failed check says what was expected."""
    work = valid_workspace(tmp_path / "ws", valid_model)
    patch_forward(work, "return out[:, :5]")
    data, _ = run_autograder(lay_out(tmp_path / "autograder", autograder_zip, work))
    assert data["score"] == 0.0
    assert row(data, "predictions")["status"] == "failed" and "shape" in row(data, "predictions")["output"]


def test_a_timed_out_submission_is_stopped(hidden_subset, valid_model, tmp_path):
    """A forward that never ends: killed at the build's --timeout, and a result that says so."""
    autograder = build(tmp_path / "short.zip", hidden_subset, "--timeout", "8")
    work = valid_workspace(tmp_path / "ws", valid_model)
    patch_forward(work, "import time\ntime.sleep(600)\nreturn out")
    data, _ = run_autograder(lay_out(tmp_path / "autograder", autograder, work))
    assert data["score"] == 0.0
    assert "did not finish within the time limit of 8 s" in row(data, "predictions")["output"]


def test_a_missing_submission_says_what_to_upload(autograder_zip, tmp_path):
    data, _ = run_autograder(lay_out(tmp_path / "autograder", autograder_zip))
    assert data["score"] == 0.0 and data["tests"] == []
    assert "notebook's last cell" in data["output"]


def test_a_crash_of_the_grader_is_a_result(autograder_zip, workspace, tmp_path):
    """The grader raises (here: its settings are broken): a result saying it is not the student's fault;
    the traceback goes to the log only."""
    root = lay_out(tmp_path / "autograder", autograder_zip, workspace)
    (root / "source" / "settings.json").write_text("{}")
    data, run = run_autograder(root)
    assert data["score"] == 0.0 and "not a problem with your work" in data["output"]
    assert "KeyError" in run.stderr and "KeyError" not in json.dumps(data)


def test_a_grader_out_of_time_leaves_the_fallback(autograder_zip, workspace, tmp_path):
    """Python killed at run_autograder's time limit: the fallback result, never a missing file."""
    root = lay_out(tmp_path / "autograder", autograder_zip, workspace)
    data, run = run_autograder(root, GRADER_TIME_LIMIT_S="1")
    assert data["score"] == 0.0 and "ran out of time or memory" in data["output"]
    assert "without writing results.json" in run.stderr


def test_without_the_jail_the_student_runs_as_another_user(autograder_zip, workspace, tmp_path):
    """Docker's seccomp stops the jail (here: no bubblewrap on PATH): graded as another user, said so."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for folder in ("/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            if tool.name != "bwrap" and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    root = lay_out(tmp_path / "autograder", autograder_zip, workspace)
    data, _ = run_autograder(root, PATH=str(tools))
    assert data["extra_data"]["isolation"] == "user", data["output"]
    assert data["score"] == 100.0


def test_the_student_is_named_by_the_metadata(tmp_path):
    (tmp_path / "submission_metadata.json").write_text(json.dumps({"users": [{"id": 12, "email": ""}]}))
    assert student_name(tmp_path) == "12"
    (tmp_path / "submission_metadata.json").write_text("not json")
    assert student_name(tmp_path) == "submission"


def test_build_refuses_bad_settings(tmp_path, capsys):
    assert main(["gradescope", "build", "--test-data", str(tmp_path / "missing.csv"), "--out",
                 str(tmp_path / "a.zip")]) == 2
    assert "hidden test file is not there" in capsys.readouterr().err
    assert not (tmp_path / "a.zip").exists()
