"""
PrairieLearn external grading (grader/platforms/prairielearn.py), without PrairieLearn:
the builder's output is laid out as PrairieLearn lays out /grade for one job (student/,
serverFilesCourse/ and its deprecated copy shared/, tests/, data/data.json) in a
temporary folder, and run() grades it. Every results.json is checked as PrairieLearn's
grader host and pl-external-grader-results read it: under 1 MB, a score in [0, 1] (or not
gradable), points on every test. The entrypoint script runs once for real, and once
with a Python that dies without writing a result.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from grader.api import GradingConfigError
from grader.messages import TITLES
from grader.platforms import container, prairielearn
from grader.platforms.container import RUNTIME_PACKAGES, read_settings
from grader.cli import main
from grading_scenarios import build_submission, patch_forward, valid_workspace, zip_folder

pytestmark = pytest.mark.slow
PL_RESULTS_LIMIT = 1024 * 1024   # apps/grader-host/src/index.ts refuses a larger results.json
VENV_PYTHON = sys.executable   # the Python of these tests, which the entrypoint runs with the pack's copy


@pytest.fixture(scope="module")
def build(hidden_subset, tmp_path_factory):
    """The builder's output for the hidden subset, with a short time limit for the student's code."""
    out, _ = prairielearn.build_question(test_data=hidden_subset, out=tmp_path_factory.mktemp("pl") / "build",
                                         timeout_s=60, memory_mb=1536)
    return out


@pytest.fixture(scope="module")
def submissions(valid_model, tmp_path_factory):
    """Zips of a valid, a NaN-predicting, a never-finishing and a not-a-zip submission."""
    dest = tmp_path_factory.mktemp("pl-submissions")
    return {name: build_submission(name, dest, valid_model) for name in ("valid", "nan", "sleeps_forever", "not_a_zip")}


def grade_tree(root, build, student_files=(), settings=None):
    """
    Lay out PrairieLearn's /grade for one job under root, as apps/prairielearn/src/lib/externalGraderCommon.ts does.

    Inputs:
    - root: An empty folder (created)
    - build: The builder's output folder
    - student_files: (name, bytes) pairs, the submitted files; none: an empty student/
    - settings: Keys of settings.json to change (say, a shorter timeout_s)

    Returns:
    - root, as a Path
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("serverFilesCourse", "shared"):   # shared/: PrairieLearn's deprecated copy of serverFilesCourse/
        subprocess.run(["cp", "-a", str(build / "serverFilesCourse"), str(root / folder)], check=True)
    if settings:
        for folder in ("serverFilesCourse", "shared"):
            path = root / folder / prairielearn.PACK_FOLDER / container.SETTINGS_FILE
            path.write_text(json.dumps({**json.loads(path.read_text()), **settings}))
    (root / "tests").mkdir()
    (root / "student").mkdir()
    files = []
    for name, data in student_files:
        (root / "student" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "student" / name).write_bytes(data)
        files.append({"name": name, "contents": base64.b64encode(data).decode()})
    (root / "data").mkdir()
    (root / "data" / "data.json").write_text(json.dumps({
        "params": {}, "correct_answers": {}, "submitted_answers": {"_files": files}, "format_errors": {},
        "partial_scores": {}, "score": 0, "feedback": {}, "variant_seed": 1, "options": {},
        "raw_submitted_answers": {}, "gradable": True}))
    return root


def read_results(root, by_entrypoint=False):
    """root/results/results.json, checked as PrairieLearn reads it; the dict. run() keeps results/ root's
    alone; the entrypoint, once the student's code has ended, lets PrairieLearn's grader host read it."""
    path = Path(root) / "results" / "results.json"
    raw = path.read_bytes()
    assert len(raw) <= PL_RESULTS_LIMIT
    data = json.loads(raw)
    assert isinstance(data["gradable"], bool)
    if data["gradable"]:
        assert 0.0 <= data["score"] <= 1.0
    for test in data["tests"]:   # pl-external-grader-results shows points only if every test has both
        assert isinstance(test["points"], (int, float)) and isinstance(test["max_points"], (int, float))
        assert 0 <= test["points"] <= test["max_points"] or test["max_points"] == 0
        assert {"name", "description", "message", "output"} <= test.keys()
    modes = (path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777)
    assert modes == ((0o755, 0o644) if by_entrypoint else (0o700, 0o644))   # before the entrypoint opens it,
    # the folder is root's alone (lock_down), so no other uid reaches the file
    return data


def test_build_keeps_secrets_out_of_the_image(build):
    """Does the build hold a Dockerfile for linux/amd64 with the pinned CPU torch, an entrypoint, the pack,
    the hidden split and the settings in serverFilesCourse/ only, and a question whose options PrairieLearn takes?"""
    image = build / "image"
    assert sorted(p.name for p in image.iterdir()) == ["Dockerfile", "grade-facial-keypoints", "requirements.txt"]
    dockerfile = (image / "Dockerfile").read_text()
    assert "FROM --platform=linux/amd64 python:3.11-slim" in dockerfile
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "bubblewrap libseccomp2 util-linux" in dockerfile
    assert f'ENTRYPOINT ["{prairielearn.ENTRYPOINT}"]' in dockerfile
    requirements = (image / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements] == list(RUNTIME_PACKAGES)
    assert "numpy==2.4.6" in requirements
    entrypoint = image / "grade-facial-keypoints"
    assert entrypoint.stat().st_mode & 0o111 and "@" not in entrypoint.read_text().replace("$@", "")
    assert b"\r" not in entrypoint.read_bytes()

    pack = build / "serverFilesCourse" / prairielearn.PACK_FOLDER
    assert sorted(p.name for p in pack.iterdir()) == ["exercise_code", "grader", "hidden", "settings.json"]
    assert (pack / "hidden" / "test.csv").is_file() and (pack / "grader" / "platforms" / "prairielearn.py").is_file()
    assert "### BEGIN SOLUTION" in (pack / "exercise_code" / "layers.py").read_text()   # the solved package
    assert not list(pack.rglob("__pycache__"))
    assert all(p.stat().st_mode & 0o077 == 0 for p in [pack, *pack.rglob("*")])   # the instructor's alone
    assert read_settings(pack) == {"timeout_s": 60, "memory_mb": 1536, "max_points": 100.0, "full_points_at": 100.0,
                                   "zero_points_at": None}

    info = json.loads((build / "questions" / prairielearn.QUESTION_FOLDER / "info.json").read_text())
    options = info["externalGradingOptions"]
    assert info["gradingMethod"] == "External" and info["type"] == "v3"
    assert options["entrypoint"] == prairielearn.ENTRYPOINT and options["serverFilesCourse"] == ["facial_keypoints/"]
    assert options["timeout"] == 60 + prairielearn.START_UP_S <= 600 and options["enableNetworking"] is False
    html = (build / "questions" / prairielearn.QUESTION_FOLDER / "question.html").read_text()
    assert '<pl-file-upload file-patterns="*.zip">' in html and "<pl-external-grader-results>" in html


def test_build_refuses_what_prairielearn_cannot_run(hidden_subset, tmp_path):
    """Is a time limit PrairieLearn would cut, or an --out that holds other files, refused before writing?"""
    with pytest.raises(GradingConfigError, match="at most 510 s"):
        prairielearn.build_question(test_data=hidden_subset, out=tmp_path / "a", timeout_s=600)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(GradingConfigError, match="not an earlier PrairieLearn build"):
        prairielearn.build_question(test_data=hidden_subset, out=tmp_path / "b")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    assert main(["prairielearn", "build", "--test-data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "c")]) == 2


def test_valid_zip_gets_full_score(build, submissions, tmp_path, capsys):
    """Does a valid zip score 1.0, with the score check's points, and are the hidden data, its copy in shared/
    and data.json root's alone before the student's code runs?"""
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["valid"].read_bytes())])
    returned = prairielearn.run(root)
    data = read_results(root)
    assert data == returned
    assert data["gradable"] is True and data["score"] == 1.0
    assert [t["name"] for t in data["tests"]] == list(TITLES.values())
    score_test = data["tests"][-1]
    assert score_test["points"] == score_test["max_points"] == 100.0
    assert sum(t["points"] for t in data["tests"]) == data["points"] == 100.0
    assert data["isolation"] in ("jail", "user") and f"isolation {data['isolation']!r}" in data["output"]
    assert data["message"].startswith("Score 1/(2*MSE)")
    for path in ("serverFilesCourse", "shared", "data", "data/data.json", "shared/facial_keypoints/hidden/test.csv"):
        assert (root / path).stat().st_mode & 0o077 == 0, path
    assert "Graded: score 1.0000" in capsys.readouterr().out


def test_unpacked_files_are_graded_too(build, submissions, tmp_path):
    """Are the zip's files, uploaded one by one (or unpacked by PrairieLearn), graded like the zip?"""
    with zipfile.ZipFile(submissions["valid"]) as archive:
        files = [(name, archive.read(name)) for name in archive.namelist() if not name.endswith("/")]
    root = grade_tree(tmp_path / "grade", build, files)
    prairielearn.run(root)
    data = read_results(root)
    assert data["gradable"] is True and data["score"] == 1.0


def test_failing_submission_scores_zero_and_uses_an_attempt(build, submissions, tmp_path):
    """Does a model that predicts NaN get score 0 (gradable: the student's own result), saying which check failed?"""
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["nan"].read_bytes())])
    prairielearn.run(root)
    data = read_results(root)
    assert data["gradable"] is True and data["score"] == 0.0
    failed = {t["name"]: t for t in data["tests"] if t["description"] == "Failed."}
    assert "NaN" in failed[TITLES["predictions"]]["message"]
    assert data["message"].startswith("Not scored.")


def test_not_a_zip_is_not_gradable(build, submissions, tmp_path):
    """Is an upload that is no zip at all marked not gradable (no attempt used), with a format error that says why?"""
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["not_a_zip"].read_bytes())])
    prairielearn.run(root)
    data = read_results(root)
    assert data["gradable"] is False and data["score"] == 0.0
    assert "is not a zip file" in data["format_errors"][0]


def test_timed_out_submission_scores_zero(build, submissions, tmp_path):
    """Is a forward pass that never returns stopped at the time limit of settings.json, and scored 0?"""
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["sleeps_forever"].read_bytes())],
                      settings={"timeout_s": 8})
    prairielearn.run(root)
    data = read_results(root)
    assert data["gradable"] is True and data["score"] == 0.0
    predictions = next(t for t in data["tests"] if t["name"] == TITLES["predictions"])
    assert "did not finish within the time limit of 8 s" in predictions["message"]


@pytest.mark.parametrize("student", ["empty", "absent", "two_zips"])
def test_missing_submission_says_what_to_upload(build, tmp_path, student, capsys):
    """Is an empty or absent student/ (or two zips in it) not gradable, with a message naming the zip and the
    5 MB limit? The CLI verb exits 0."""
    files = [("a.zip", b"PK"), ("b.zip", b"PK")] if student == "two_zips" else []
    root = grade_tree(tmp_path / "grade", build, files)
    if student == "absent":
        (root / "student").rmdir()
    assert main(["prairielearn", "run", "--root", str(root)]) == 0
    data = read_results(root)
    assert data["gradable"] is False and data["tests"] == []
    assert ".zip" in data["message"] and "5 MB" in data["message"]
    if student == "two_zips":
        assert "upload only one" in data["message"]
    assert "not gradable" in capsys.readouterr().out


def test_grader_crash_is_not_the_students_fault(build, submissions, tmp_path, monkeypatch, capsys):
    """When the grader itself raises, is the result not gradable, saying so, with the traceback in the job's
    log (stderr) and not in what the student reads?"""
    def broken_grade(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(container, "grade", broken_grade)
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["valid"].read_bytes())])
    prairielearn.run(root)
    data = read_results(root)
    assert data["gradable"] is False and data["tests"] == []
    assert "not a problem with your work" in data["message"]
    assert "disk on fire" not in json.dumps(data)
    assert "disk on fire" in capsys.readouterr().err


def test_results_are_cut_under_one_megabyte():
    """Is a result with huge outputs cut under PrairieLearn's 1 MB, saying so, with its points kept?"""
    rows = [{"name": f"check {i}", "status": "failed", "score": 0.0, "max_score": 0.0,
             "output": "first line\n" + "\u00e9" * 400_000} for i in range(6)]
    result = {"score": 40.0, "output": "Not scored.", "tests": rows,
              "extra_data": {"max_points": 100.0, "isolation": "user", "raw_score": None, "execution_time_s": 1.0}}
    data = prairielearn.fit_size(prairielearn.to_prairielearn(result))
    size = len(json.dumps(data).encode())
    assert size < prairielearn.MAX_RESULTS_BYTES < PL_RESULTS_LIMIT
    assert all("characters cut" in t["output"] and t["message"] == "first line" for t in data["tests"])
    assert data["score"] == 0.4 and data["points"] == 40.0


def test_entrypoint_script_grades_and_always_writes_a_result(build, submissions, tmp_path):
    """Does the image's entrypoint, run as PrairieLearn runs it, grade a valid zip with the pack's copy and exit 0;
    and, when Python dies without a result (or is killed at the time limit), write the fallback and still exit 0?"""
    script = build / "image" / "grade-facial-keypoints"
    env = {"PATH": os.environ["PATH"], "GRADER_PYTHON": VENV_PYTHON, "OMP_NUM_THREADS": "1"}
    root = grade_tree(tmp_path / "grade", build, [("submission.zip", submissions["valid"].read_bytes())])
    run = subprocess.run([str(script)], env={**env, "GRADER_ROOT": str(root)}, capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = read_results(root, by_entrypoint=True)
    assert data["gradable"] is True and data["score"] == 1.0

    dying = tmp_path / "dying-python"   # a Python killed by the out-of-memory killer writes nothing
    dying.write_text("#!/bin/sh\nkill -9 $$\n")
    dying.chmod(0o755)
    sleeping = tmp_path / "sleeping-python"
    sleeping.write_text("#!/bin/sh\nsleep 60\n")
    sleeping.chmod(0o755)
    for python, extra, status in [(dying, {}, 137), (sleeping, {"GRADER_TIME_LIMIT_S": "1"}, 137)]:
        root = grade_tree(tmp_path / f"grade-{python.name}", build, [("submission.zip", b"PK")])
        run = subprocess.run([str(script)], capture_output=True, text=True, timeout=60,
                             env={**env, **extra, "GRADER_ROOT": str(root), "GRADER_PYTHON": str(python)})
        assert run.returncode == 0, run.stderr
        assert "wrote the fallback result" in run.stderr
        data = read_results(root, by_entrypoint=True)
        assert data["gradable"] is False and data["score"] == 0.0 and f"status {status}" in data["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation 'user' needs root, as in PrairieLearn's container")
def test_entrypoint_without_the_jail_keeps_the_hidden_data_from_the_student(build, valid_model, tmp_path):
    """Where the jail cannot start (no bubblewrap on PATH, as under Docker's seccomp profile), does the entrypoint
    grade with isolation "user", and can the student's code read neither the hidden labels (in serverFilesCourse/
    and PrairieLearn's copy in shared/) nor data.json? The spy predicts NaN if it reads any of them."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "mkdir", "chmod", "rm", "cat", "timeout", "prlimit", "setpriv"):
        (tools / tool).symlink_to(shutil.which(tool))
    # /grade where anyone may pass (pytest's own folders are root's alone): only lock_down keeps the spy out
    root = Path(tempfile.mkdtemp(prefix="pl-grade-"))
    root.chmod(0o755)
    secrets = [root / folder / prairielearn.PACK_FOLDER / "hidden" / "test.csv" for folder in ("serverFilesCourse",
                                                                                                 "shared")]
    secrets += [root / "data" / "data.json", root / "serverFilesCourse" / prairielearn.PACK_FOLDER / "settings.json"]
    workspace = valid_workspace(tmp_path / "spy", valid_model)
    patch_forward(workspace, f"for path in {[str(p) for p in secrets]!r}:\n"
                             "    try:\n        open(path).read(1)\n    except OSError:\n        continue\n"
                             "    return out * float('nan')\nreturn out")
    spy = zip_folder(workspace, tmp_path / "spy.zip")
    try:
        grade_tree(root, build, [("submission.zip", spy.read_bytes())])
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)   # as a course repository checks out
        assert all(path.stat().st_mode & 0o004 for path in secrets)   # readable to anyone, until locked
        run = subprocess.run([str(build / "image" / "grade-facial-keypoints")], capture_output=True, text=True,
                             timeout=600, cwd=tmp_path, env={"PATH": str(tools), "GRADER_ROOT": str(root),
                                                             "GRADER_PYTHON": VENV_PYTHON, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr
        data = read_results(root, by_entrypoint=True)
    finally:
        shutil.rmtree(root)
    assert data["isolation"] == "user", data
    assert data["gradable"] is True and data["score"] == 1.0, data["message"]
