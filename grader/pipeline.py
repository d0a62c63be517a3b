"""
Grading one submission: grade_submission owns the boundary, and STEPS are its checks.

    unpack -> model_file -> plain_data -> parameters -> code -> predictions | -> score
    (unpack)  (model_check ...................)       (sandbox, worker)     |   (evaluation)
    predict(): where the submission is (here, or on a Dask worker)           |   finish(): here

The steps run in order. Each returns what the student reads when it passes, or
raises CheckFailed with what went wrong and how to fix it; the submission then
scores 0 and the later checks say they did not run. Any other exception is the
grader's own fault: the result says so and is graded again on the next run.

Asked for them (Context.checks), predict() also brings back the notebooks' trusted
checks (grader/trusted_checks.py): the worker runs their probes once it has sent
its predictions, and what it did not bring back runs in the check worker.

This module runs in the grader's processes with the instructor's trusted
exercise_code. The submission's code only ever runs in the worker, in the jail,
and only JSON comes back. The steps before the score need no labels: the labels
never leave the process that calls finish().
"""
import datetime
import shutil
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import forkserver, messages
from .errors import CheckFailed, GraderError
from .jail import DESCRIPTIONS, Limits
from .messages import TITLES
from .model_check import check_parameters, find_model_file, read_plain_model
from .points import PointsRule
from .results import Result, Row
from .sandbox import WorkerRun, run_worker
from .trusted import KEYPOINT_NAMES, keypoint_errors, keypoint_score
from .trusted_checks import LIMITS as CHECK_LIMITS, Probes, run_checks
from .unpack import find_submission_root, unpack
from .worker_output import failure_message, predictions_tensor, stderr_note, stopped_at, worker_timings

TRACEBACK_CHARS = 3000   # of our own traceback kept for the instructors
FEEDBACK_MIN_FACES = 20  # below this, errors per keypoint would say too much about single hidden faces


@dataclass(frozen=True)
class Context:
    """
    What every submission of a run is graded with.

    - images: Path of a uint8 .npy array (N, 96, 96), the test images (no labels)
    - count: N, the number of test images
    - scratch: A folder for the submissions' scratch folders
    - limits, isolation: For the worker (see jail.py and sandbox.py)
    - targets: float32 array (N, 15, 2), the test keypoints in unit coordinates; None where
      only predict() runs (a cluster worker)
    - points: PointsRule (None where only predict() runs)
    - key: Identifies the test data and points rule (results with another key are regraded)
    - checks: grade_ids of the notebooks' trusted checks to run with the model (trusted_checks.CELLS)
    - batch: Names the batch (one grade() call): its submissions share a fork server per thread
      (grader/forkserver.py; isolation "jail"), which grade() closes at the end. "": each
      submission gets one of its own, closed when it is done
    """
    images: Path
    count: int
    scratch: Path
    limits: Limits
    isolation: str
    targets: np.ndarray | None = None
    points: PointsRule | None = None
    key: str | None = None
    checks: tuple = ()
    batch: str = ""


@dataclass
class Submission:
    """What the steps learn about one submission, each from the one before."""
    source: Path
    context: Context
    scratch: Path | None = None        # this submission's own folder, removed at the end
    root: Path | None = None           # the unpacked submission (holding models/ and exercise_code/)
    model_file: Path | None = None
    saved: dict | None = None          # the model file's plain contents
    run: WorkerRun | None = None
    predictions: torch.Tensor | None = None   # (N, 30) or (N, 15, 2), finite
    raw_score: float | None = None
    keypoint_errors: dict | None = None     # {keypoint name: error in pixels}, aggregates over all faces
    checks: dict | None = None         # {grade_id: trusted_checks.CheckResult} (Context.checks)
    timings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One check: step.run(submission) returns the student's text when it passes, or raises CheckFailed."""
    name: str
    title: str
    run: Callable
    timing: str | None = None    # the key of timings its seconds add to


@dataclass
class Outcome:
    """
    What predict() found: all a cluster worker sends back.

    - passed: The student's text of each step that passed, in the order of STEPS
    - failure: The message of the step that failed, or None when every step passed
    - grader_error: Details of the grader's own failure, for the instructors (None: it did not fail)
    - predictions: float32 array (N, 30) or (N, 15, 2), finite, when every step passed
    - timings: Seconds of the steps
    - checks: The trusted checks asked for (Context.checks), {grade_id: CheckResult}; None if
      they could not run (the notebook's autograde then runs them itself)
    """
    passed: list = field(default_factory=list)
    failure: str | None = None
    grader_error: str | None = None
    predictions: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    checks: dict | None = None


def grade_submission(source, name, context):
    """
    Grade one submission in this process: predict(), then finish().

    Inputs:
    - source: Path of a .zip or of an unpacked submission folder
    - name: The submission's name in the results
    - context: Context, with the targets

    Returns:
    - Result; never raises for a bad submission
    """
    return finish(name, source, predict(source, context), context)


def predict(source, context):
    """
    Run the steps before the score (PREDICT_STEPS) on one submission, until one fails.

    Inputs:
    - source: Path of a .zip or of an unpacked submission folder
    - context: Context (its targets are not used)

    Returns:
    - Outcome; never raises for a bad submission
    """
    start = time.perf_counter()
    work = Submission(source=Path(source), context=context)
    outcome = Outcome(timings=work.timings)
    try:
        work.scratch = Path(tempfile.mkdtemp(prefix="submission-", dir=context.scratch))
        for step in PREDICT_STEPS:
            with _timer(work.timings, step.timing):
                outcome.passed.append(step.run(work))
        outcome.predictions = work.predictions.numpy()
    except CheckFailed as error:
        outcome.failure = str(error)
    except Exception as error:  # our bug or our machine: the student gets a zero that says so
        outcome.failure, outcome.grader_error = grader_failure(error)
    finally:
        if work.scratch:
            if context.checks:
                outcome.checks = all_checks(work)
            shutil.rmtree(work.scratch, ignore_errors=True)
        if not context.batch:   # a batch of one
            forkserver.close_batch(context.batch)
    work.timings["total_s"] = round(time.perf_counter() - start, 3)
    return outcome


def all_checks(work):
    """
    The trusted checks of work.context.checks, {grade_id: CheckResult}: those the worker brought
    back (work.checks), and the rest from the check worker (trusted_checks.run_checks), as when
    a step before the worker failed. None if they could not run.
    """
    found = dict(work.checks or {})
    missing = [cell for cell in work.context.checks if cell not in found]
    try:
        if missing:
            found.update(run_checks(work.root or work.source, missing, isolation=work.context.isolation,
                                    scratch=work.scratch))
    except RuntimeError:   # the check worker's jail failed: TrustedGrades runs them again, and stops if it fails
        return None
    return found


def finish(name, source, outcome, context):
    """
    The Result of a submission from its Outcome: the score step, which needs the labels, runs here.

    Inputs:
    - name: The submission's name in the results
    - source: Its path (recorded in the result)
    - outcome: Outcome of predict(), here or on a cluster worker
    - context: Context, with the targets

    Returns:
    - Result
    """
    start = time.perf_counter()
    work = Submission(source=Path(source), context=context, timings=dict(outcome.timings), checks=outcome.checks)
    passed, failure, grader_error = list(outcome.passed), outcome.failure, outcome.grader_error
    if failure is None:
        try:
            if len(passed) != len(PREDICT_STEPS):   # a worker that did not run every step before the score
                raise RuntimeError(f"the outcome sent back passed {len(passed)} of {len(PREDICT_STEPS)} steps "
                                   "and failed none: a broken or forged worker")
            work.predictions = _sent_predictions(outcome.predictions, context.count)
            with _timer(work.timings, SCORE_STEP.timing):
                passed.append(SCORE_STEP.run(work))
        except CheckFailed as error:
            failure = str(error)
        except Exception as error:
            failure, grader_error = grader_failure(error)
    work.timings["total_s"] = round(work.timings.get("total_s", 0.0) + time.perf_counter() - start, 3)
    return make_result(name, work, passed, failure, grader_error)


def _sent_predictions(predictions, n):
    """
    An Outcome's predictions as a float32 tensor, checked again where the labels are: an Outcome may
    come from a cluster worker, and the score is computed only from what check_predictions would pass.
    """
    predictions = torch.as_tensor(np.asarray(predictions, dtype=np.float32))
    if tuple(predictions.shape) not in ((n, 30), (n, 15, 2)) or not bool(torch.isfinite(predictions).all()):
        raise RuntimeError(f"the predictions sent back, of shape {tuple(predictions.shape)}, are not what "
                           "check_predictions passes: a broken or forged worker")
    return predictions


def grader_failed(source, name, context, error):
    """The Result for a submission whose grading raised `error` outside the steps (a bug of ours)."""
    return make_result(name, Submission(source=Path(source), context=context), [], *grader_failure(error))


def make_result(name, work, passed, failure=None, grader_error=None):
    """
    The Result of a grading that got this far.

    Inputs:
    - name: The submission's name
    - work: Submission (its source, context, raw_score and timings are read)
    - passed: The student's text of each check that passed, in the order of STEPS
    - failure: The message of the check that failed next, or None when all passed
    - grader_error: Details of the grader's own failure, for the instructors (None: it did not fail)

    Returns:
    - Result: a row per step (those that passed, the one that failed, the rest not run)
    """
    context, rule = work.context, work.context.points
    raw_score = work.raw_score if failure is None else None
    points = rule.points(raw_score)   # 0 when unscored
    rows = []
    for index, step in enumerate(STEPS):
        if index < len(passed):
            status, output = "passed", passed[index]
        elif index == len(passed):
            status, output = "failed", failure
        else:
            status, output = "failed", messages.NOT_SCORED if step.name == "score" else messages.NOT_RUN
        if step.name == "score":   # the only check worth points: passed at full points
            rows.append(Row(step.title, "passed" if status == "passed" and points >= rule.max_points else "failed",
                            points, rule.max_points, output))
        else:
            rows.append(Row(step.title, status, 0.0, 0.0, output))
    extra = {"source": str(work.source), "isolation": context.isolation,
             "isolation_text": DESCRIPTIONS[context.isolation], "timings": work.timings, "key": context.key,
             "points_rule": rule.as_dict(), "points_rule_text": rule.describe(), "test_images": context.count,
             "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "keypoint_errors_px": work.keypoint_errors if failure is None else None, "grader_error": grader_error}
    if context.checks:   # None when they could not run
        extra["trusted_checks"] = work.checks and {cell: asdict(result) for cell, result in work.checks.items()}
    return Result(
        submission=name, score=points, max_points=rule.max_points, raw_score=raw_score,
        output=rows[-1].output if failure is None else messages.NOT_SCORED_SUMMARY.format(message=failure),
        tests=rows, execution_time=work.timings.get("total_s", 0.0), extra=extra)


def grader_failure(error, reason=None):
    """(message for the student, details for the instructors only: they may name our paths) of a grading
    that raised `error`, a bug of ours or our machine's; reason defaults to the error's type."""
    return (messages.GRADER_FAILED.format(reason=reason or type(error).__name__),
            "".join(traceback.format_exception(error))[-TRACEBACK_CHARS:])


# The steps. Each takes the Submission, fills in what the next ones need, and returns its text.

def unpack_submission(work):
    count = unpack(work.source, work.scratch / "unpacked")
    work.root = find_submission_root(work.scratch / "unpacked")
    return messages.UNPACKED.format(count=count)


def check_model_file(work):
    work.model_file = find_model_file(work.root)
    return messages.MODEL_FILE_SIZE.format(mb=work.model_file.stat().st_size / 1e6)


def check_plain_data(work):
    work.saved = read_plain_model(work.model_file)
    return messages.PLAIN_DATA


def check_parameter_count(work):
    return messages.PARAMETERS.format(count=check_parameters(work.saved))


def run_code(work):
    """Run the student's code in the worker; it passes once the worker got to predicting."""
    if not (work.root / "exercise_code" / "networks").is_dir():
        raise CheckFailed("code", messages.NO_NETWORKS)
    context = work.context
    root, folder, server = work.root, work.scratch / "work", None
    if context.isolation == "jail":
        server, (root, folder) = forkserver.prepared(work.root, context.batch, context.images, context.limits,
                                                     context.scratch.parent)   # outlives the batch's submissions
    probes = Probes.make(context.checks, folder / "checks") if context.checks else None
    run = work.run = run_worker(submission_root=root, images=context.images, scratch=work.scratch, work=folder,
                                limits=context.limits, isolation=context.isolation, server=server,
                                checks=probes and probes.spec(), checks_timeout_s=CHECK_LIMITS.timeout_s)
    if probes:   # all_checks runs those it did not finish
        work.checks = probes.after_model(work.root, CHECK_LIMITS.timeout_s, sent=run.report is not None)
    work.timings["worker_s"] = round(run.seconds, 3)
    work.timings["worker"] = worker_timings(run.report)
    if not run.student_code_ran:   # what the worker wrote so far came from our code alone
        raise GraderError(f"the worker failed before running student code (stage {run.stage}, exit code "
                          f"{run.exit_code}): {str(run.report.get('error')) if run.report else run.stderr[-500:]}")
    stage, sent = stopped_at(run), bool(run.report and run.report.get("ok"))
    if stage != "predict" and not sent:   # it stopped, or raised, before predicting
        raise CheckFailed("code", failure_message(run, stage, context.count, context.limits))
    return messages.CODE_RAN


def check_predictions(work):
    """The worker's predictions, checked: sent in time, of the right shape, numbers, finite."""
    run, n, limits = work.run, work.context.count, work.context.limits
    if run.timed_out or not (run.report and run.report.get("ok")):
        raise CheckFailed("predictions", failure_message(run, stopped_at(run), n, limits))
    work.predictions = predictions_tensor(run.report, n)
    return messages.PREDICTED.format(n=n, seconds=run.seconds, shape=tuple(work.predictions.shape)) \
        + stderr_note(run, failed=False)


def score(work):
    """The raw score 1/(2*MSE), exactly as evaluate_model computes it (the tensors are small: this is quick),
    and the error of each keypoint, for the student to act on (see keypoint_feedback)."""
    targets = torch.from_numpy(work.context.targets)
    work.raw_score = keypoint_score(work.predictions, targets)
    rule, raw, n = work.context.points, work.raw_score, work.context.count
    text = messages.SCORE.format(raw_score=raw, n=n, mse=1 / (2 * raw) if raw else float("nan"),
                                 points=rule.points(raw), max_points=rule.max_points, rule=rule.describe())
    work.keypoint_errors = keypoint_feedback(work.predictions, targets)
    if work.keypoint_errors:
        rows = sorted(work.keypoint_errors.items(), key=lambda item: -item[1])
        text += messages.KEYPOINT_TABLE.format(n=n, rows="\n".join(
            messages.KEYPOINT_ROW.format(name=name, error=error) for name, error in rows))
    return text


def keypoint_feedback(predictions, targets):
    """
    The error of each keypoint in pixels, rounded to 0.1 px ({name: error}, in the order of
    KEYPOINT_NAMES), or None when the hidden split has fewer than FEEDBACK_MIN_FACES faces. Only
    aggregates over all faces ever leave here: never a value of one face, never an image.
    """
    if len(targets) < FEEDBACK_MIN_FACES:
        return None
    errors = keypoint_errors(predictions, targets).tolist()
    return {name: round(error, 1) for name, error in zip(KEYPOINT_NAMES, errors)}


STEPS = (
    Step("unpack", TITLES["unpack"], unpack_submission, "unpack_s"),
    Step("model_file", TITLES["model_file"], check_model_file, "load_s"),
    Step("plain_data", TITLES["plain_data"], check_plain_data, "load_s"),
    Step("parameters", TITLES["parameters"], check_parameter_count, "load_s"),
    Step("code", TITLES["code"], run_code),
    Step("predictions", TITLES["predictions"], check_predictions),
    Step("score", TITLES["score"], score, "scoring_s"),
)
CHECKS = {step.name: step.title for step in STEPS}   # name -> title, in order
PREDICT_STEPS, SCORE_STEP = STEPS[:-1], STEPS[-1]    # the score alone needs the labels


@contextmanager
def _timer(timings, key):
    """with _timer(timings, "load_s"): ... adds the seconds the block took to timings[key] (None: not timed)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if key:
            timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - start, 4)
