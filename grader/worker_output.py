"""
What the worker sent back (sandbox.WorkerRun), read for the student: why it
failed, or its predictions after checking them. Nothing in a WorkerRun is
trusted: the student's code could have written any of it.
"""
import math

import torch

from . import messages
from .errors import CheckFailed

OUTPUT_CHARS = 3000   # of stderr (and of torch's message) shown to the student
WORKER_TIMINGS = ("startup_s", "import_code_s", "load_s", "predict_s")


def stopped_at(run):
    """The stage the worker was in when it stopped: the one its error report names, else the last it entered."""
    reported = (run.report or {}).get("stage")
    return reported if isinstance(reported, str) else run.stage


def failure_message(run, stage, n, limits):
    """The student's message for a worker that timed out, stopped without a result, or reported an error."""
    doing = messages.DOING[stage].format(n=n) if stage in messages.DOING else messages.DOING_ELSE
    if run.timed_out:
        text = messages.TIMED_OUT.format(timeout_s=limits.timeout_s, doing=doing, threads=limits.threads)
    elif run.report is None:
        text = messages.STOPPED.format(doing=doing, how=_how_it_ended(run, limits))
    else:
        text = _error_message(run.report, stage, doing, limits)
    return text + stderr_note(run)


def _error_message(report, stage, doing, limits):
    """An exception the worker reported: what, where, how to fix, then details."""
    error, tb = str(report.get("error", "an error")), str(report.get("traceback", ""))
    if report.get("out_of_memory"):
        return messages.OUT_OF_MEMORY.format(doing=doing, memory_mb=limits.memory_mb, error=error[:500])
    if stage == "load":   # torch's message lists every tensor that does not fit: the details, not the summary
        return messages.WEIGHTS_DO_NOT_FIT.format(error=error[:OUTPUT_CHARS])
    first_line = error.splitlines()[0][:300] if error.strip() else "an error"
    return messages.RAISED.format(first_line=first_line, doing=doing, hint=messages.HINTS.get(stage, ""),
                                  traceback=tb[-1500:])


def _how_it_ended(run, limits):
    if run.signal_name in messages.ENDED_BY:
        return messages.ENDED_BY[run.signal_name].format(cpu_s=limits.cpu_seconds(), memory_mb=limits.memory_mb)
    if run.signal_name:
        return messages.ENDED_BY_OTHER.format(signal=run.signal_name)
    return messages.EXITED.format(code=run.exit_code)


def predictions_tensor(report, n):
    """The predictions of a successful report as a float32 tensor, after checking shape and values."""
    shape, values = report.get("shape"), report.get("predictions")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
            and isinstance(values, list) and len(values) == math.prod(shape)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise CheckFailed("predictions", messages.UNREADABLE)
    if tuple(shape) not in ((n, 30), (n, 15, 2)):
        raise CheckFailed("predictions", messages.WRONG_SHAPE.format(shape=tuple(shape), n=n))
    predictions = torch.tensor(values, dtype=torch.float32).reshape(shape)
    nan, inf = int(torch.isnan(predictions).sum()), int(torch.isinf(predictions).sum())
    if nan or inf:
        raise CheckFailed("predictions", messages.NOT_FINITE.format(nan=nan, inf=inf, total=predictions.numel()))
    return predictions


def stderr_note(run, failed=True):
    """What the student's code printed to stderr, for its author (it never costs points by itself)."""
    text = run.stderr.strip()
    if not text:
        return ""
    return (messages.STDERR_FAILED if failed else messages.STDERR_PASSED).format(text=text[-OUTPUT_CHARS:])


def worker_timings(report):
    """The worker's own timings, if it sent sane ones (student code could send anything, NaN included)."""
    timings = (report or {}).get("timings")
    if not isinstance(timings, dict):
        return None
    return {key: value for key, value in timings.items() if key in WORKER_TIMINGS
            and isinstance(value, (int, float)) and math.isfinite(value)}
