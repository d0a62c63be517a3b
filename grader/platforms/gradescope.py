"""
Gradescope: the autograder zip an instructor uploads, and what runs inside it.

    python -m grader gradescope build --test-data PATH --out autograder.zip   # on the instructor's machine
    python -m grader gradescope run --root /autograder                        # in Gradescope's container

build_autograder writes the zip with setup.sh and run_autograder at its root (as
Gradescope requires), the runtime requirements, the grader (with the solved
exercise_code it trusts), the hidden test split and the grading settings.
Gradescope unpacks it to /autograder/source, and for each submission runs
run_autograder as root, which calls run(). run grades /autograder/submission
(the uploaded zip, or its files) and writes exactly one
/autograder/results/results.json, checked against the schema
(gradescope_results.py), also when the grader crashes; run_autograder writes a
fallback when Python itself dies.

What students see (chosen at build time, see VISIBILITY): the checks of their
submission at once, so they can fix a broken upload before the deadline; the
score on the hidden test split at once by default (as I2DL's own submission
server shows it), or only after the due date / once grades are published
(--score-visibility), which limits probing the test split with resubmissions.
The grader's log (stdout) is for instructors only.
"""
import json
import math
import stat
import tempfile
import zipfile
from pathlib import Path

from ..api import GradingConfigError
from ..messages import TITLES
from ..points import PointsRule
from ..trusted import atomic_file
from .container import (SETTINGS_FILE, always_a_result, choose_isolation, copy_pack, crash_message, grade_one,
                        grading_settings, lock_down, pinned_versions, read_settings, requirements_text, template)
from .gradescope_results import check_results

VISIBILITY = ("visible", "after_due_date", "after_published", "hidden")
SCORE_LATER = ("Your submission was graded. The checks of your upload are below; your score on the hidden test "
               "set is shown {when}.")
START_UP_S = 240   # beyond the worker's timeout: pip-less start, torch import, unpacking, the checks


def build_autograder(*, test_data, out, timeout_s=120, memory_mb=1536, max_points=PointsRule.max_points,
                     full_points_at=PointsRule.full_at, zero_points_at=PointsRule.zero_at,
                     score_visibility="visible"):
    """
    Write Gradescope's autograder zip.

    Inputs:
    - test_data: The hidden test CSV, or the folder holding test.csv
    - out: Path of the zip to write (replaced atomically)
    - timeout_s, memory_mb: The limits of the student's code (as grader.api.grade); keep memory_mb
      below the container's memory (Gradescope's settings), or the container dies with no result
    - max_points, full_points_at, zero_points_at: The PointsRule; set the assignment's points on
      Gradescope to max_points
    - score_visibility: When students see the score row (one of VISIBILITY)

    Returns:
    - Path of the zip, and the number of its entries
    """
    if score_visibility not in VISIBILITY:
        raise GradingConfigError(f"--score-visibility must be one of {', '.join(VISIBILITY)} "
                                 f"(got {score_visibility!r})")
    test_csv, settings = grading_settings(test_data=test_data, timeout_s=timeout_s, memory_mb=memory_mb,
                                          max_points=max_points, full_points_at=full_points_at,
                                          zero_points_at=zero_points_at)
    settings["score_visibility"] = score_visibility
    pins = pinned_versions()
    fallback = message_only(crash_message(RuntimeError("the grader was stopped"))[0] +
                            " (It ran out of time or memory.)", elapsed_s=0)
    check_results(fallback)
    scripts = {"setup.sh": template("gradescope_setup.sh", TORCH_VERSION=pins["torch"]),
               "run_autograder": template("gradescope_run_autograder", TIME_LIMIT_S=str(timeout_s + START_UP_S))}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        pack = copy_pack(Path(staging) / "pack")
        with atomic_file(out) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in scripts.items():   # executable, LF line endings (Gradescope runs dos2unix anyway)
                _add(archive, name, text.encode(), 0o755)
            _add(archive, "requirements.txt", requirements_text(pins).encode())
            _add(archive, SETTINGS_FILE, json.dumps(settings, indent=1).encode())
            _add(archive, "fallback_results.json", json.dumps(fallback, indent=1).encode())
            archive.write(test_csv, "hidden/test.csv")
            for path in sorted(pack.rglob("*")):
                if path.is_file():
                    archive.write(path, f"pack/{path.relative_to(pack).as_posix()}")
            count = len(archive.namelist())
    return out, count


def run(root="/autograder"):
    """
    Grade the submission in Gradescope's layout and write root/results/results.json, always.

    Inputs:
    - root: The /autograder folder (a setting, so that tests can lay one out anywhere): source/ (the
      unpacked zip), submission/, submission_metadata.json, results/

    Returns:
    - The results.json written, as a dict
    """
    root = Path(root)
    source = root / "source"

    def graded():
        # Before any student code: the grader, the hidden data, the upload, the student's identity and the
        # results are root's alone (the student's code runs as another user where the jail cannot start).
        lock_down(source, root / "submission", root / "submission_metadata.json", root / "results")
        settings = read_settings(source)
        result = grade_one(root / "submission", source / "hidden" / "test.csv", name=student_name(root),
                           settings=settings, isolation=choose_isolation())
        data = with_visibility(result, settings["score_visibility"])
        check_results(data)
        print(f"Graded {result['extra_data']['submission']}: {result['score']} points "
              f"(isolation {result['extra_data'].get('isolation')}).")
        return data

    return always_a_result(graded, message_only, root / "results" / "results.json")


def with_visibility(result, score_visibility):
    """The pack's result (Gradescope's shape) with what students see: the checks at once, the score
    row as chosen (with the error of each keypoint as a Markdown table), the grader's log never."""
    data = dict(result, visibility="visible", stdout_visibility="hidden")
    data["tests"] = [dict(test, visibility="visible") for test in result["tests"]]
    for test in data["tests"]:
        if test["name"] == TITLES["score"]:
            test["visibility"] = score_visibility
            errors = result["extra_data"].get("keypoint_errors_px")
            if errors:
                test["output"], test["output_format"] = markdown_score(test["output"], errors), "md"
    if score_visibility != "visible":   # the summary and the leaderboard would show the score at once
        data.pop("leaderboard", None)
        data["output"] = SCORE_LATER.format(when=score_visibility.replace("_", " "))
    return data


def markdown_score(text, errors):
    """The score row's text with its table of errors per keypoint ({name: pixels}) in Markdown, worst first."""
    rows = sorted(errors.items(), key=lambda item: -item[1])
    intro = text.split("\n\n")[0]
    return (f"{intro}\n\nThe error of each keypoint on the hidden faces (root mean squared distance, in "
            "pixels of the 96x96 face), worst first:\n\n| keypoint | error (px) |\n|---|---:|\n"
            + "".join(f"| {name} | {error:.1f} |\n" for name, error in rows))


def message_only(text, elapsed_s):
    """A results.json with no grade, only a message: nothing to grade, or a failure of ours."""
    return {"score": 0.0, "execution_time": math.ceil(elapsed_s), "output": text, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": []}


def student_name(root):
    """The submitter's email or id, from submission_metadata.json ("submission" when it says neither)."""
    try:
        users = json.loads((Path(root) / "submission_metadata.json").read_text()).get("users") or []
        user = users[0] if users and isinstance(users[0], dict) else {}
        return str(user.get("email") or user.get("id") or "submission")
    except (OSError, ValueError, AttributeError):
        return "submission"


def _add(archive, name, data, mode=0o644):
    """A file entry with Unix permissions (zipfile's writestr would leave them out)."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.create_system, info.external_attr = 3, (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)

