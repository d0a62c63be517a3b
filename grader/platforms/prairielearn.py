"""
PrairieLearn external grading: the grader's image, the course's server files, and
what runs inside the container for each submission.

    python -m grader prairielearn build --test-data PATH --out DIR   # on the instructor's machine
    python -m grader prairielearn run --root /grade                  # in PrairieLearn's container

build_question writes DIR/ laid out as a course repository's folders:

    DIR/image/                           Dockerfile, requirements.txt, grade-facial-keypoints (the entrypoint):
                                         the public image, with no hidden data and no solutions in it
    DIR/serverFilesCourse/facial_keypoints/
                                         grader/ and the solved exercise_code/ (copy_pack), hidden/test.csv,
                                         settings.json: copied into the course's serverFilesCourse/, which
                                         PrairieLearn never shows to students
    DIR/questions/facial_keypoints/      info.json (externalGradingOptions) and question.html (pl-file-upload)

For each submission PrairieLearn fills /grade (student/, serverFilesCourse/, its
deprecated copy shared/, tests/, data/data.json) and runs the image's entrypoint
as root, which calls run(). PrairieLearn discards the result of a container that
exits non-zero and refuses a results.json over 1 MB, so run() always writes one
/grade/results/results.json under that size, and the entrypoint exits 0 and
writes a fallback when Python dies without writing one (see
https://github.com/PrairieLearn/PrairieLearn/blob/master/docs/externalGrading.md
and apps/grader-host/src/index.ts).

PrairieLearn's data.json holds the question's params and the submitted answers
(the uploaded files again, in base64), but no student identity, so each result
is named "submission"; it is locked down like the hidden data, never read.
"""
import base64
import json
import shutil
import uuid
from pathlib import Path

from ..api import GradingConfigError
from ..jail import DESCRIPTIONS
from ..keypoint_chart import keypoint_error_chart
from ..messages import TITLES
from ..points import PointsRule
from .container import (SETTINGS_FILE, always_a_result, choose_isolation, copy_pack, grade_one, grading_settings,
                        lock_down, pinned_versions, read_settings, requirements_text, template)

PACK_FOLDER = "facial_keypoints"          # the pack's folder in the course's serverFilesCourse/
QUESTION_FOLDER = "facial_keypoints"      # the example question's folder in the course's questions/
ENTRYPOINT = "/usr/local/bin/grade-facial-keypoints"
MAX_TIMEOUT_S = 600        # PrairieLearn's limit of externalGradingOptions.timeout
START_UP_S = 90            # beyond the worker's timeout: Python and torch, the isolation probes, unpacking, scoring
KILL_MARGIN_S = 15         # the entrypoint kills Python this long before PrairieLearn kills the container
MAX_RESULTS_BYTES = 1_000_000 - 50_000    # PrairieLearn refuses more than 1 MB (1024 * 1024); we stay well below
TEST_OUTPUT_CHARS = 20_000                # one check's output, then the summary's, before the size is measured
MESSAGE_CHARS = 2_000
CUT = "\n[... {count:,} characters cut: PrairieLearn's results must stay under 1 MB]"
UPLOAD_HINT = "PrairieLearn takes uploads of at most 5 MB. No attempt was used."


def build_question(*, test_data, out, timeout_s=120, memory_mb=1536, max_points=PointsRule.max_points,
                   full_points_at=PointsRule.full_at, zero_points_at=PointsRule.zero_at,
                   image="YOUR_DOCKER_HUB_USER/facial-keypoints-grader:latest"):
    """
    Write the PrairieLearn grader's image, the course's server files and an example question.

    Inputs:
    - test_data: The hidden test CSV, or the folder holding test.csv
    - out: The folder to write (created; a previous build there is replaced, anything else refused)
    - timeout_s, memory_mb: The limits of the student's code (as grader.api.grade). PrairieLearn's
      grader gives a container 2 GiB and kills it after externalGradingOptions.timeout, which is
      timeout_s + START_UP_S and at most 600 s
    - max_points, full_points_at, zero_points_at: The PointsRule; PrairieLearn gets points / max_points
    - image: The Docker Hub name the image will be pushed as (written into info.json)

    Returns:
    - Path of out, and the container's timeout written into info.json
    """
    container_timeout = int(timeout_s + START_UP_S + 0.999)
    if container_timeout > MAX_TIMEOUT_S:
        raise GradingConfigError(f"--timeout must be at most {MAX_TIMEOUT_S - START_UP_S} s: PrairieLearn kills a "
                                 f"grading container after at most {MAX_TIMEOUT_S} s, and the grader needs "
                                 f"{START_UP_S} s of that for itself (got {timeout_s:g})")
    test_csv, settings = grading_settings(test_data=test_data, timeout_s=timeout_s, memory_mb=memory_mb,
                                          max_points=max_points, full_points_at=full_points_at,
                                          zero_points_at=zero_points_at)
    pins = pinned_versions()
    out = _fresh_folder(out)

    image_dir = out / "image"   # the docker build context: nothing secret may ever be in it
    image_dir.mkdir(parents=True)
    _write(image_dir / "Dockerfile", template("prairielearn_Dockerfile", TORCH_VERSION=pins["torch"],
                                               ENTRYPOINT=ENTRYPOINT))
    _write(image_dir / "requirements.txt", requirements_text(pins))
    _write(image_dir / Path(ENTRYPOINT).name,
           template("prairielearn_entrypoint.sh", PACK_FOLDER=PACK_FOLDER,
                     TIME_LIMIT_S=str(container_timeout - KILL_MARGIN_S)), mode=0o755)

    pack = copy_pack(out / "serverFilesCourse" / PACK_FOLDER)
    (pack / "hidden").mkdir()
    shutil.copyfile(test_csv, pack / "hidden" / "test.csv")
    _write(pack / SETTINGS_FILE, json.dumps(settings, indent=1) + "\n")
    lock_down(out / "serverFilesCourse")   # the solutions and the hidden labels: the instructor's alone here too

    question = out / "questions" / QUESTION_FOLDER
    question.mkdir(parents=True)
    info = {"uuid": str(uuid.uuid4()), "title": "Facial keypoint detection: submit your model",
            "topic": "Convolutional neural networks", "tags": ["exercise_09", "autograded"], "type": "v3",
            "singleVariant": True, "gradingMethod": "External",
            "externalGradingOptions": {"enabled": True, "image": image, "entrypoint": ENTRYPOINT,
                                       "serverFilesCourse": [f"{PACK_FOLDER}/"], "timeout": container_timeout,
                                       "enableNetworking": False}}
    _write(question / "info.json", json.dumps(info, indent=2) + "\n")
    _write(question / "question.html", template("prairielearn_question.html", MAX_POINTS=f"{max_points:g}"))
    return out, container_timeout


def run(root="/grade"):
    """
    Grade the submission in PrairieLearn's layout and write root/results/results.json, always.

    Inputs:
    - root: The /grade folder (a setting, so that tests can lay one out anywhere): student/,
      serverFilesCourse/facial_keypoints/, data/data.json; results/ is created here

    Returns:
    - The results.json written, as a dict
    """
    root = Path(root)

    def graded():
        # Before any student code: everything PrairieLearn put here is root's alone: the grader, the hidden
        # data (also in its deprecated copy, shared/), the upload, the submitted answers (data/), the results
        # (the student's code runs as another user where the jail cannot start).
        (root / "results").mkdir(parents=True, exist_ok=True)   # PrairieLearn does not make it
        lock_down(*root.iterdir())
        pack = root / "serverFilesCourse" / PACK_FOLDER
        settings = read_settings(pack)
        result = grade_one(root / "student", pack / "hidden" / "test.csv", name="submission", settings=settings,
                           isolation=choose_isolation())
        data = to_prairielearn(result)
        print(f"Graded: score {data['score']:.4f}, {result['score']:g} of {result['extra_data']['max_points']:g} "
              f"points (isolation {result['extra_data'].get('isolation')}).")
        return fit_size(data)

    return always_a_result(graded, lambda text, elapsed_s: fit_size(not_gradable(text, elapsed_s)),
                           root / "results" / "results.json", no_submission_hint=UPLOAD_HINT)


def to_prairielearn(result):
    """
    The pack's result as PrairieLearn's results.json.

    Inputs:
    - result: Dict of results.Result.to_json() (Gradescope's shape: points, tests with score and max_score)

    Returns:
    - Dict with score (points / max points, in [0, 1]), gradable, message, output, and one test per check
      with its points. Not gradable (no points, no attempt used) when the upload is no readable submission
      zip or the grader failed on it: the student only has to upload again.
    """
    extra = result["extra_data"]
    max_points = extra["max_points"]
    score = min(max(result["score"] / max_points, 0.0), 1.0) if max_points > 0 else 0.0
    tests = []
    for row in result["tests"]:
        lines = (row["output"] or "").strip().splitlines() or [""]
        tests.append({"name": row["name"], "description": "Passed." if row["status"] == "passed" else "Failed.",
                      "points": row["score"], "max_points": row["max_score"], "message": lines[0][:MESSAGE_CHARS],
                      "output": "\n".join(lines[1:])})
    unpack_failed = any(row["name"] == TITLES["unpack"] and row["status"] == "failed" for row in result["tests"])
    gradable = not unpack_failed and not extra.get("grader_error")
    isolation = extra.get("isolation")
    output = (f"{result['output']}\n\nGraded in {extra.get('execution_time_s', 0):.1f} s. Your code ran with "
              f"isolation {isolation!r}: {DESCRIPTIONS.get(isolation, 'unknown')}.")
    data = {"gradable": gradable, "score": score if gradable else 0.0, "message": result["output"][:MESSAGE_CHARS],
            "output": output, "tests": tests, "points": result["score"], "max_points": max_points,
            "raw_score": extra.get("raw_score"), "isolation": isolation}
    if not gradable:
        data["format_errors"] = [result["output"][:MESSAGE_CHARS]]
    errors = extra.get("keypoint_errors_px")
    if errors and gradable:   # the table is in the score test's output; the chart shows it at a glance
        chart = base64.b64encode(keypoint_error_chart(errors)).decode()
        data["images"] = [{"label": "Error of each keypoint on the hidden faces (pixels)",
                           "url": f"data:image/png;base64,{chart}"}]
    return data


def not_gradable(message, elapsed_s):
    """A results.json that uses no attempt and gives no points, with a message: nothing to grade, or our failure."""
    return {"gradable": False, "score": 0.0, "message": message, "format_errors": [message],
            "output": f"Stopped after {elapsed_s:.1f} s.", "tests": []}


def fit_size(data, limit=MAX_RESULTS_BYTES):
    """
    data with its texts cut so that its JSON stays under limit bytes, saying so where it cut.

    Each check's output and the summary are cut to TEST_OUTPUT_CHARS first; if that is still too
    large (a wide Unicode text), the outputs are cut in half until it fits.
    """
    budget = TEST_OUTPUT_CHARS
    while True:
        fitted = dict(data, output=_cut(data.get("output", ""), budget),
                      tests=[dict(test, output=_cut(test.get("output", ""), budget)) for test in data.get("tests", [])])
        if len(json.dumps(fitted, allow_nan=False).encode()) < limit:
            return fitted
        if budget < 100:   # not the texts: a crash of ours, whose short result fits (always_a_result)
            raise ValueError(f"the results stay over {limit} bytes with every text cut")
        budget //= 2


def _cut(text, chars):
    return text if len(text) <= chars else text[:chars] + CUT.format(count=len(text) - chars)


def _fresh_folder(out):
    """out, empty: made, or a previous build removed; GradingConfigError if it holds anything else."""
    out = Path(out)
    if out.is_file() or out.is_dir() and any(out.iterdir()) and not (out / "image" / Path(ENTRYPOINT).name).is_file():
        raise GradingConfigError(f"{out} exists and is not an earlier PrairieLearn build: choose a new --out folder")
    try:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
    except OSError as error:
        raise GradingConfigError(f"Cannot write to {out}: {error}") from None
    return out


def _write(path, text, mode=0o644):
    path.write_text(text, newline="\n")   # LF line endings: the entrypoint runs in a Linux container
    path.chmod(mode)
