"""
Grading one submission: a pipeline of small steps, one module each.

    unpack -> find_model_file -> read_plain_model -> check_parameters -> run_worker -> check_predictions -> score
    (unpack)  (model_check ............................................)  (sandbox)    (here)    (evaluation)

Every failure becomes a result: a step raises an error naming the check that
failed, with a message that tells the student what went wrong and how to fix
it, and grade_submission turns it into that check's row (score 0). An error of
the grader itself (not the student's fault) becomes a row that says so and is
regraded on the next run.

This module runs in the grader's own processes with the instructor's trusted
exercise_code. The submission's code only ever runs in the worker.
"""
import datetime
import math
import shutil
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exercise_code.evaluation import keypoint_score
from exercise_code.util.limits import MAX_FILE_BYTES, MAX_PARAMETERS
from exercise_code.util.submission import MODEL_ENTRY

from .model_check import ModelCheckError, check_parameters, find_model_file, read_plain_model
from .points import PointsRule
from .results import build_result
from .jail import DESCRIPTIONS, Limits
from .sandbox import run_worker
from .unpack import UnpackError, find_submission_root, unpack

CHECKS = {
    "unpack": "The submission unpacks safely",
    "model_file": f"{MODEL_ENTRY} is there and under {MAX_FILE_BYTES / 1e6:.0f} MB",
    "plain_data": "The model file holds plain weights (it loads without running code)",
    "parameters": f"The model has fewer than {MAX_PARAMETERS:,} parameters, counting buffers",
    "code": "Your exercise_code builds KeypointModel(hparams) and loads the weights",
    "predictions": "Predictions for every test image: in time, in memory, of the right shape, finite",
    "score": "Score on the hidden test set",
}
CODE_STAGES = {"import": "importing your exercise_code", "model_file": "reading your model file",
               "build": "building KeypointModel(hparams)", "load": "loading your weights into the model"}
OUTPUT_CHARS = 3000   # of stderr shown to the student
WORKER_TIMINGS = ("startup_s", "import_code_s", "load_s", "predict_s")


class CheckFailed(Exception):
    """A check failed; the message is for the student."""

    def __init__(self, check, message):
        super().__init__(message)
        self.check = check


class GraderError(RuntimeError):
    """The grader could not grade this submission, through no fault of the student."""


@dataclass(frozen=True)
class Context:
    """
    What every submission of a run is graded with.

    - images: Path of a uint8 .npy array (N, 96, 96), the test images (no labels)
    - targets: float32 array (N, 15, 2), the test keypoints in unit coordinates
    - scratch: A folder for the submissions' scratch folders
    - limits, isolation: For the worker (see jail.py and sandbox.py)
    - points: PointsRule
    - key: Identifies the test data and points rule (results with another key are regraded)
    """
    images: Path
    targets: np.ndarray
    scratch: Path
    limits: Limits
    isolation: str
    points: PointsRule
    key: str


def grade_submission(source, name, context):
    """
    Grade one submission.

    Inputs:
    - source: Path of a .zip or of an unpacked submission folder
    - name: The submission's name in the results
    - context: Context

    Returns:
    - The result dict (see results.build_result); never raises for a bad submission
    """
    start, timings, passed = time.perf_counter(), {}, {}
    raw_score, failure, grader_error = None, None, None
    scratch = Path(tempfile.mkdtemp(prefix="submission-", dir=context.scratch))
    try:
        with _timer(timings, "unpack_s"):
            count = unpack(source, scratch / "unpacked")
            root = find_submission_root(scratch / "unpacked")
        passed["unpack"] = f"Unpacked {count} files."
        with _timer(timings, "load_s"):
            model_file = find_model_file(root)
            passed["model_file"] = f"{MODEL_ENTRY} is {model_file.stat().st_size / 1e6:.2f} MB."
            saved = read_plain_model(model_file)
            passed["plain_data"] = "Read as plain data (torch.load with weights_only=True): a KeypointModel."
            passed["parameters"] = f"{check_parameters(saved):,} parameters."
        if not (root / "exercise_code" / "networks").is_dir():
            raise CheckFailed("code", "Your submission has no exercise_code/networks/ folder, so the grader cannot "
                                      "build your KeypointModel. Build the zip with create_submission_zip().")
        run = run_worker(submission_root=root, images=context.images, scratch=scratch,
                         limits=context.limits, isolation=context.isolation)
        timings["worker_s"] = round(run.seconds, 3)
        timings["worker"] = _worker_timings(run.report)
        if run.stage == "predict":   # the worker got past the code's checks, whatever happens next
            passed["code"] = "Imported your exercise_code, built KeypointModel(hparams) and loaded the weights."
        predictions = check_predictions(run, len(context.targets), context.limits)
        passed["predictions"] = (f"Predicted all {len(context.targets)} test images in {run.seconds:.1f} s; "
                                 f"shape {tuple(predictions.shape)}, all finite.") + _stderr_note(run, failed=False)
        with _timer(timings, "scoring_s"):
            raw_score = keypoint_score(predictions, torch.from_numpy(context.targets))
    except (UnpackError, ModelCheckError, CheckFailed) as error:
        failure = (getattr(error, "check", "unpack"), str(error))
    except Exception as error:  # our bug or our machine: the student gets a zero that says so
        grader_error = "".join(traceback.format_exception(error))[-OUTPUT_CHARS:]
        # The details go to the instructors only (extra_data): they may name our paths.
        failure = (None, f"The grader itself failed on this submission ({type(error).__name__}). "
                         "This is not your fault: tell your instructor; it will be graded again.")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    timings["total_s"] = round(time.perf_counter() - start, 3)
    return make_result(name=name, source=source, context=context, passed=passed, failure=failure,
                       raw_score=raw_score, timings=timings, grader_error=grader_error)


def check_predictions(run, n, limits):
    """
    What the worker sent back, checked: the predictions as a tensor, or CheckFailed.

    Inputs:
    - run: sandbox.WorkerRun
    - n: Number of test images
    - limits: jail.Limits (for the messages)

    Returns:
    - predictions: float32 tensor of shape (n, 30) or (n, 15, 2), all finite
    """
    report, stage = run.report, run.stage
    if not run.student_code_ran:   # what the worker wrote so far came from our code alone
        raise GraderError(f"the worker failed before running student code (stage {stage}, exit code "
                          f"{run.exit_code}): {str((report or {}).get('error')) if report else run.stderr[-500:]}")
    if report and isinstance(report.get("stage"), str):   # where an exception was raised
        stage = report["stage"]
    check = "predictions" if stage == "predict" else "code"
    doing = f"predicting the {n} test images" if stage == "predict" else \
        CODE_STAGES.get(stage, "running your exercise_code")   # an odd stage: the student's code wrote it
    if run.timed_out:
        raise CheckFailed(check, f"Your code did not finish within the time limit of {limits.timeout_s:g} s: it "
                                 f"was still {doing}. The grader runs your model on a CPU with {limits.threads} "
                                 "thread(s). Make sure nothing waits for input, the network or a file, that no "
                                 "training runs at import, and that the model is small enough." + _stderr_note(run))
    if report is None:
        raise CheckFailed(check, f"Your code stopped while {doing}, without sending predictions "
                                 f"({_how_it_ended(run, limits)})." + _stderr_note(run))
    if not report.get("ok"):
        raise CheckFailed(check, _error_message(report, stage, doing, limits) + _stderr_note(run))
    return _predictions_tensor(report, n)


def make_result(*, name, source, context, passed, failure, raw_score, timings, grader_error=None):
    """The Gradescope-shaped result from the checks that passed and the one that failed."""
    rule = context.points
    points = rule.points(raw_score) if failure is None else 0.0
    failed_check, message = failure or (None, None)
    tests, blocked = [], False
    for check, title in CHECKS.items():
        if check == "score":
            status, output = ("passed" if points >= rule.max_points else "failed",
                              _score_text(raw_score, rule, points, len(context.targets))) if failure is None \
                else ("failed", "Not scored: an earlier check failed.")
        elif check in passed:
            status, output = "passed", passed[check]
        elif failure and not blocked and failed_check in (check, None):   # None: the grader failed here
            status, output, blocked = "failed", message, True
        else:
            status, output = "failed", "Not run: an earlier check failed."
        tests.append({"name": title, "status": status, "score": points if check == "score" else 0.0,
                      "max_score": rule.max_points if check == "score" else 0.0, "output": output})
    summary = tests[-1]["output"] if failure is None else f"Not scored. {message}"
    return build_result(
        name=name, tests=tests, raw_score=raw_score, points=points, max_points=rule.max_points,
        output=summary, execution_time=timings.get("total_s", 0.0),
        extra={"source": str(source), "isolation": context.isolation, "isolation_text": DESCRIPTIONS[context.isolation],
               "timings": timings, "key": context.key, "points_rule": rule.as_dict(),
               "points_rule_text": rule.describe(), "test_images": len(context.targets),
               "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "grader_error": grader_error})


def _error_message(report, stage, doing, limits):
    """A student-facing message for an exception the worker reported: what, where, how to fix, then details."""
    error, tb = str(report.get("error", "an error")), str(report.get("traceback", ""))
    if report.get("out_of_memory"):
        return (f"Your code ran out of memory while {doing} (limit {limits.memory_mb:,} MB). Use a smaller "
                f"model, and do not keep large tensors or lists of outputs around.\n\n{error[:500]}")
    if stage == "load":   # torch's message lists every tensor that does not fit: the details, not the summary
        return ("The weights in your model file do not fit the KeypointModel your exercise_code builds from "
                "the saved hparams. Did you change the model code after saving? Train and save again with the "
                f"code you submit.\n\n{error[:OUTPUT_CHARS]}")
    hints = {
        "import": "Run `from exercise_code.networks import KeypointModel` in a fresh Python in your workspace to "
                  "see the same error, fix it, and submit again.",
        "model_file": "Save your model again with save_model(model).",
        "build": "The grader builds KeypointModel(hparams) with the hparams saved in your model file. Check that "
                 "your __init__ works with exactly those hparams.",
        "predict": "Check that forward works on a batch of shape (N, 1, 96, 96) with values in [0, 1], on the CPU, "
                   "in eval mode.",
    }
    first_line = error.splitlines()[0][:300] if error.strip() else "an error"
    return (f"Your code raised {first_line} while {doing}. {hints.get(stage, '')}"
            f"\n\nThe end of the traceback:\n{tb[-1500:]}")


def _worker_timings(report):
    """The worker's own timings, if it sent sane ones (student code could send anything, NaN included)."""
    timings = (report or {}).get("timings")
    if not isinstance(timings, dict):
        return None
    return {key: value for key, value in timings.items() if key in WORKER_TIMINGS
            and isinstance(value, (int, float)) and math.isfinite(value)}


def _how_it_ended(run, limits):
    if run.signal_name == "SIGXCPU":
        return f"it used more than {limits.cpu_seconds()} s of CPU time"
    if run.signal_name == "SIGKILL":
        return f"it was killed, most likely for using too much memory (limit {limits.memory_mb:,} MB) or CPU time"
    if run.signal_name:
        return f"it was ended by {run.signal_name}"
    return f"it exited with code {run.exit_code}; does your code call sys.exit or os._exit?"


def _predictions_tensor(report, n):
    """The predictions of a successful report as a float32 tensor, after checking shape and values."""
    shape, values = report.get("shape"), report.get("predictions")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
            and isinstance(values, list) and len(values) == math.prod(shape)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise CheckFailed("predictions", "The grader could not read your model's predictions. Does your code "
                                         "write to file descriptors it did not open?")
    if tuple(shape) not in ((n, 30), (n, 15, 2)):
        raise CheckFailed("predictions", f"Your model returned predictions of shape {tuple(shape)} for {n} test "
                                         f"images; KeypointModel.forward must return shape (N, 30) (or (N, 15, 2)): "
                                         "x and y of each of the 15 keypoints, for each image of the batch.")
    predictions = torch.tensor(values, dtype=torch.float32).reshape(shape)
    nan, inf = int(torch.isnan(predictions).sum()), int(torch.isinf(predictions).sum())
    if nan or inf:
        raise CheckFailed("predictions", f"Your predictions contain {nan} NaN and {inf} infinite values (of "
                                         f"{predictions.numel()}). Check for divisions by zero, log or sqrt of "
                                         "negative numbers, and weights that became NaN in training.")
    return predictions


def _stderr_note(run, failed=True):
    """What the student's code printed to stderr, for its author (it never costs points by itself)."""
    text = run.stderr.strip()
    if not text:
        return ""
    intro = "\n\nWhat your code printed to stderr (the end):" if failed else \
        "\n\nYour code printed to stderr (that is fine; shown for your information):"
    return f"{intro}\n{text[-OUTPUT_CHARS:]}"


def _score_text(raw_score, rule, points, n):
    mse = 1 / (2 * raw_score) if raw_score else float("nan")
    return (f"Score 1/(2*MSE) = {raw_score:.2f} on {n} hidden test faces (MSE {mse:.5f} in unit coordinates): "
            f"{points:g} of {rule.max_points:g} points ({rule.describe()}).")


@contextmanager
def _timer(timings, key):
    """with _timer(timings, "unpack_s"): ... records the seconds the block took."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = round(time.perf_counter() - start, 4)
