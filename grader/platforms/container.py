"""
One submission, graded inside a platform's container: what Gradescope
(gradescope.py) and PrairieLearn (prairielearn.py) share.

Both start their script as root, in a fresh container per submission, with the
student's files, the hidden data and the grader side by side. Before any student
code runs:

- lock_down() makes the hidden data, the grader and what the platform says about
  the student root's alone (chmod go=);
- choose_isolation() takes the jail where it starts, and else, explicitly and
  recorded in the result, isolation "user" (Docker's default seccomp profile
  refuses the namespaces the jail needs; see grader/jail.py);
- grade_one() finds the submission (the uploaded zip, or its files) and grades
  it with grader.api.grade, into a folder of root's;
- always_a_result() writes the platform's results file, always: nothing to
  grade, or a crash of ours, becomes a result that says so, never a missing file.
"""
import json
import re
import shutil
import stat
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .. import jail
from ..api import GradingConfigError, grade, test_csv_path
from ..points import PointsRule
from ..results import write_json_atomic
from ..trusted import DataFormatError, read_keypoints_csv
from ..unpack import find_submission_root, holds_submission

SETTINGS_FILE = "settings.json"   # beside the platform's copy of the grader: its limits and points
CRASH_TRACEBACK_CHARS = 4000
FILES = Path(__file__).with_name("files")   # the templates of the platforms' scripts and images
RUNTIME_PACKAGES = ("numpy", "pandas", "matplotlib", "tqdm", "jsonschema")   # beside torch, which comes first


class NoSubmission(ValueError):
    """The platform's submission folder holds no submission; the message tells the student what to upload."""


def copy_pack(dest):
    """
    Copy what grading needs of the pack into dest: the grader and the solved
    exercise_code it trusts (grader/trusted.py), without caches. Run it with
    PYTHONPATH=dest. Holds the solutions: keep it root's alone (lock_down).

    Returns:
    - dest, as a Path
    """
    import grader
    from ..trusted import PACKAGE

    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(Path(grader.__file__).parent, dest / "grader", ignore=ignore)
    shutil.copytree(PACKAGE, dest / "exercise_code", ignore=ignore)
    return dest


def grading_settings(*, test_data, timeout_s, memory_mb, max_points, full_points_at, zero_points_at):
    """
    Check what a platform builder was given, before it writes anything.

    Returns:
    - (the hidden test CSV's path, the settings dict that read_settings gives back in the container)

    Raises GradingConfigError saying what to fix: a bad points rule or limit, a missing or broken test CSV
    (refused now, not in front of every student).
    """
    try:
        PointsRule(max_points, full_points_at, zero_points_at)
    except ValueError as error:
        raise GradingConfigError(str(error)) from None
    if timeout_s <= 0 or memory_mb < 256:
        raise GradingConfigError(f"Need --timeout above 0 and --memory-mb of at least 256 (got {timeout_s:g}, "
                                 f"{memory_mb})")
    test_csv = test_csv_path(test_data)
    try:
        read_keypoints_csv(test_csv)
    except (DataFormatError, OSError) as error:
        raise GradingConfigError(f"The hidden test file cannot be read: {error}") from None
    return test_csv, {"timeout_s": timeout_s, "memory_mb": memory_mb, "max_points": max_points,
                      "full_points_at": full_points_at, "zero_points_at": zero_points_at}


def pinned_versions():
    """{package: version} of constraints.txt (the versions the pack is tested with), for torch and
    RUNTIME_PACKAGES; GradingConfigError when one has no pin (a platform's image must be reproducible)."""
    path = Path(__file__).parents[2] / "constraints.txt"
    if not path.is_file():
        raise GradingConfigError(f"{path} is not there: build the platform's files from a clone of the pack")
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), flags=re.M))
    missing = [name for name in ("torch", *RUNTIME_PACKAGES) if name not in pins]
    if missing:
        raise GradingConfigError(f"{path} pins no version of {', '.join(missing)}: add them (name==version)")
    return pins


def requirements_text(pins):
    """requirements.txt of the runtime packages (torch is installed before, from the CPU index)."""
    return "".join(f"{name}=={pins[name]}\n" for name in RUNTIME_PACKAGES)


def template(name, **values):
    """The template FILES/name with each @KEY@ replaced by its value; AssertionError if one is left."""
    text = (FILES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise AssertionError(f"{name}: no value for {', '.join(left)}")
    return text


def read_settings(folder):
    """
    The grading settings an adapter's builder wrote (SETTINGS_FILE in folder).

    Returns:
    - Dict with timeout_s, memory_mb, max_points, full_points_at, zero_points_at (and the adapter's own keys)
    """
    return json.loads((Path(folder) / SETTINGS_FILE).read_text())


def lock_down(*paths):
    """Make paths (files, or folders and all in them) root's alone: no group or other permission bits."""
    for top in map(Path, paths):
        if not top.exists():
            continue
        for path in [top, *(top.rglob("*") if top.is_dir() else [])]:
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(stat.S_IMODE(mode) & 0o700)


def choose_isolation():
    """
    The jail if it starts here; else isolation "user" (as root); else JailUnavailable naming both problems.
    Only the platform adapters choose this way: everywhere else the jail is required.
    """
    try:
        return jail.require("jail")
    except jail.JailUnavailable as no_jail:
        try:
            return jail.require("user")
        except jail.JailUnavailable as no_user:
            raise jail.JailUnavailable(f"{no_jail}\n{no_user}") from None


def find_submission(folder):
    """
    The submission in the platform's submission folder: the folder itself when the
    student uploaded the zip's files (or the platform unpacked the zip), else the one
    .zip in it.

    Raises NoSubmission, saying what to upload, when there is neither.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NoSubmission(f"No submission folder ({folder}). Upload the .zip that the notebook's last cell made.")
    if holds_submission(find_submission_root(folder)):
        return folder
    zips = sorted(p for p in folder.rglob("*.zip") if p.is_file())
    if len(zips) == 1:
        return zips[0]
    found = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    raise NoSubmission(f"No submission found: expected the .zip that the notebook's last cell made (or the files in "
                       f"it: models/ and exercise_code/), got {found}" +
                       (" (several .zip files: upload only one)" if zips else "") + ".")


def grade_one(submission_folder, test_csv, *, name, settings, isolation):
    """
    Grade the one submission of a platform's submission folder.

    Inputs:
    - submission_folder: The platform's folder of the student's files
    - test_csv: The hidden test CSV (root's alone)
    - name: The submission's name in the result (the student's id or email)
    - settings: Dict from read_settings
    - isolation: From choose_isolation

    Returns:
    - The result, as results.Result.to_json() (Gradescope's results.json shape)

    Raises NoSubmission when there is nothing to grade, GradingConfigError when the
    grader cannot start (a readable secret, for one).
    """
    source = find_submission(submission_folder)
    out = Path(tempfile.mkdtemp(prefix="platform-results-"))   # root's alone (0700)
    try:
        [result] = grade(submissions={name: source}, test_data=test_csv, out_dir=out, isolation=isolation,
                         timeout_s=settings["timeout_s"], memory_mb=settings["memory_mb"],
                         max_points=settings["max_points"], full_points_at=settings["full_points_at"],
                         zero_points_at=settings["zero_points_at"])
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def crash_message(error):
    """What a student reads when the grader itself failed (never their fault), and our traceback for the log."""
    details = "".join(traceback.format_exception(error))[-CRASH_TRACEBACK_CHARS:]
    return ("The grader failed on its side, so this submission was not graded (this is not a problem with your "
            "work). Please submit again later; if it happens again, tell your instructor."), details


def always_a_result(grade, message_result, path, no_submission_hint=""):
    """
    The platforms' contract: exactly one results file, whatever happens.

    Inputs:
    - grade: Function () -> the platform's results (a dict) of the graded submission
    - message_result: Function (text, elapsed_s) -> the platform's results with no grade, only a message:
      used when there is nothing to grade (NoSubmission: the text says what to upload) and when the
      grader failed (crash_message; its traceback goes to stderr, the job's log, for instructors only)
    - path: Where the results file goes (written atomically; its folder is made)
    - no_submission_hint: Added to the message when there is nothing to grade

    Returns:
    - The results written, as a dict
    """
    start = time.monotonic()
    try:
        data = grade()
    except NoSubmission as error:
        data = message_result(f"{error} {no_submission_hint}".strip(), time.monotonic() - start)
    except Exception as error:   # ours, never the student's
        message, details = crash_message(error)
        print(details, file=sys.stderr)
        data = message_result(message, time.monotonic() - start)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)
    return data
