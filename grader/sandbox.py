"""
Step 4: run grader/worker.py on one submission, in the jail (grader/jail.py),
and collect what it sends back.

In the jail, the worker is a child of the batch's fork server (grader/forkserver.py):
a jailed zygote that imported torch once forks it, and makes sure nothing of it is
left for the next submission. It sees the system and Python read-only, the test
images (no labels) read-only, its copy of the submission and its own work folder,
and nothing else: no network, no other process, no hidden data, no results. It
runs as an unprivileged uid under rlimits and a wall-clock kill (see grader/jail.py).

Isolation "user" (asked for by name, by the platform adapters, where the jail
cannot start) runs the same worker, copied beside its work folder, as a fresh
uid under the same limits; what the worker may read is then decided by file
modes: its own work folder and submission (that uid's alone), the test images,
and whatever else on the machine anyone may read. api.grade first checks, by
trying, that the hidden data, the results and the grader are root's alone.
Isolation "none" (only when asked for by name) runs the same worker with the
limits and a scratch folder but without the jail: it could read every file the
grader's user can read, the hidden test file included. Every result records
which isolation was in force.
"""
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from . import jail
from .forkserver import CHECK_WORKER, WORKER, Child, readable_copy
from .trusted import MODEL_ENTRY

TAIL_BYTES = 8000          # the end of stdout/stderr we keep for the student
RESULT_CAP = 64 * 2 ** 20  # the predictions of 100,000 test faces fit
STAGES_CAP = 1 << 16       # a handful of short lines, unless the student's code writes there too
POLL_S = 0.05              # how often a worker that runs the checks too is looked at for its result


class IsolationError(RuntimeError):
    """The jail does not start on this machine (or an unknown isolation was asked for); the message says what to do."""


@dataclass
class WorkerRun:
    """What came back from a worker. Only `report["predictions"]` is ever trusted, after checks."""
    report: dict | None        # the worker's result line, or None when it sent none (or broken JSON)
    stage: str | None          # the last stage the worker said it entered
    student_code_ran: bool     # it reached the "import" stage (before that, only our code ran)
    seconds: float
    timed_out: bool
    exit_code: int | None
    signal_name: str | None    # the signal that ended the student's process, if one did
    stderr: str                # the last TAIL_BYTES of what it printed
    stdout: str


def exposed_paths(isolation):
    """The host paths the jail shows to every worker besides its own files: none without a jail
    (for "user", files are private by their modes, see jail.unreadable_problem)."""
    return ["/usr", *jail.python_paths()] if isolation == "jail" else []


def run_worker(*, submission_root, images, scratch, work, limits, isolation, server=None, checks=None,
               checks_timeout_s=0):
    """
    Run the worker on one submission and collect what it sends back.

    Inputs:
    - submission_root: Folder holding the submission's models/ and exercise_code/ (with a server,
      its copy in the server's slot: ForkServer.prepare)
    - images: A uint8 .npy file of shape (N, 96, 96), the test images (no labels); with a server,
      the server's copy is used
    - scratch: A folder of this run, never shown to the worker: the files it writes through its
      descriptors (result, stdout, stderr) go there
    - work: The worker's working folder, holding what checks names (scratch/work; with a server,
      ForkServer.prepare's)
    - limits: jail.Limits of the model's run: its deadline is limits.timeout_s
    - isolation: "jail" (in the server's jail), "user" or "none" (checked by detect_isolation)
    - server: The forkserver.ForkServer whose zygote forks the worker: isolation "jail" only, and required
    - checks: None, or the trusted checks' spec (grader/trusted_checks.py, Probes.spec) for the worker
      to run after it has sent its result; their files are in work
    - checks_timeout_s: Wall-clock seconds the checks get, from when the result is there

    Returns:
    - WorkerRun. Its report is the result file as it was when the worker ended or, with checks,
      once it held a result (then the checks run, in their own time): the model never gets it.
    """
    if (isolation == "jail") != (server is not None):
        raise ValueError(f"isolation {isolation!r} with{'out' if server is None else ''} a fork server")
    as_user = isolation == "user"
    scratch, work = Path(scratch), Path(work)
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    uid = jail.new_uid() if as_user else None
    if server:
        worker, check_worker, images = server.worker, server.check_worker, server.images
        jail.give_to(work, server.uid)   # the checks' files, made since prepare
    else:   # copies: the grader's own folder may be root's alone (on a platform)
        worker, check_worker = (readable_copy(source, scratch) for source in (WORKER, CHECK_WORKER))
    if checks:
        checks = {**checks, "worker": str(check_worker), "submission": str(submission_root),
                  "model_entry": MODEL_ENTRY}
    run_limits = replace(limits, timeout_s=limits.timeout_s + checks_timeout_s) if checks else limits
    if as_user:   # scratch stays root's: the uid may pass through it, not list it or change it
        scratch.chmod(0o711)
        for private in (work, submission_root):   # that uid's alone: another student's uid cannot read them
            jail.give_to(private, uid)
            private.chmod(0o700)
    env = {**jail.BASE_ENV, "HOME": str(work), "TMPDIR": str(work / "tmp"), "MPLCONFIGDIR": str(work / "tmp"),
           "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads)}
    stage_read, stage_write = os.pipe()   # stages go through a pipe: what our code wrote cannot be taken back
    with open(stage_read, "rb", buffering=0) as stage_pipe:
        os.set_blocking(stage_read, False)    # read once the worker is gone: never wait for a process that escaped
        with ExitStack() as ours:   # our copies of what the worker inherits, closed once it holds them
            ours.callback(os.close, stage_write)
            # Beside work, not in it: the jail shows work only, so these cannot be swapped for links elsewhere.
            files = {name: ours.enter_context(open(scratch / name, "wb", opener=_private))
                     for name in ("result", "stdout", "stderr")}
            spec = {"result_fd": files["result"].fileno(), "stage_fd": stage_write, "threads": limits.threads,
                    "batch_size": 64, "submission": str(submission_root), "images": str(images),
                    "model_entry": MODEL_ENTRY, "checks": checks}
            start = time.perf_counter()
            if server:
                process = server.run(spec, (files["result"].fileno(), stage_write, files["stdout"].fileno(),
                                            files["stderr"].fileno()), run_limits.cpu_seconds(), work)
            else:
                command = [sys.executable, "-I", "-B", str(worker), json.dumps(spec)]
                if as_user:
                    command = jail.limited_command(command, limits=run_limits, uid=uid)
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=files["stdout"], stderr=files["stderr"],
                    pass_fds=(stage_write, spec["result_fd"]), env=env, cwd=work,
                    start_new_session=True,   # one process group: a timeout kills all of it
                    preexec_fn=None if as_user else lambda: jail.apply_limits(run_limits))   # else prlimit does
        try:
            report, timed_out, running = _wait(process, limits.timeout_s, scratch / "result", poll=bool(checks))
            seconds = time.perf_counter() - start   # the model's: never the checks'
            if running and not timed_out:   # it sent its result and runs the checks, in their own time
                _ended(process, checks_timeout_s)
        finally:   # on a timeout, when interrupted, and for what a finished worker left running (in the
            _kill(process)   # jail, the zygote kills those): never leave a process behind
            if as_user:   # what it left running in a session of its own, which the process group kill missed
                jail.kill_uid(uid)
        stages = _stages(_drain(stage_pipe))
        stages = stages[:stages.index("checks")] if "checks" in stages else stages   # the model's stages
    return WorkerRun(report=report, stage=stages[-1] if stages else None,
                     student_code_ran="import" in stages, seconds=seconds, timed_out=timed_out,
                     exit_code=process.returncode, signal_name=_signal_name(process.returncode, as_user),
                     stderr=_tail(scratch / "stderr"), stdout=_tail(scratch / "stdout"))


def detect_isolation(choice="jail"):
    """
    The isolation to grade with: "jail" ("auto" is the same) after checking that
    the jail starts here, or "user" or "none" when asked for by name. Never falls back:
    raises IsolationError, saying what to install, when the jail cannot start.
    """
    choice = "jail" if choice == "auto" else choice
    try:
        return jail.require(choice)
    except jail.JailUnavailable as error:
        raise IsolationError(str(error)) from None


def _wait(process, timeout_s, result, poll):
    """
    Wait for the worker until timeout_s or, polling (a worker that runs the checks next), only
    until its result file holds a result.

    Returns:
    - (the worker's report: when it ended, or the first its result file held; whether it timed out;
      whether it is still running)
    """
    deadline, size = time.monotonic() + timeout_s, 0
    while True:
        if _ended(process, max(min(POLL_S, deadline - time.monotonic()), 0) if poll else timeout_s):
            return _report(_head(result, RESULT_CAP)), False, False
        if poll and result.stat().st_size != size:   # being written, or written
            size = result.stat().st_size
            report = _report(_head(result, RESULT_CAP))
            if report is not None:
                return report, False, True
        if time.monotonic() >= deadline:
            return _report(_head(result, RESULT_CAP)), True, True


def _ended(process, timeout_s):
    """Wait up to timeout_s for the worker; whether it ended."""
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def _kill(process):
    """Kill the worker's whole process group, and wait for the worker (a fork server's child: see Child.kill)."""
    if isinstance(process, Child):
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _private(path, flags):
    """open()'s opener for the files the worker writes through its descriptors: root's alone."""
    return os.open(path, flags, 0o600)


def _report(data):
    """
    The worker's result: the last JSON line with "ok" (NaN and Infinity are allowed
    here, the predictions are checked later), or None when missing or broken.
    """
    report = None
    for item in _json_lines(data):
        if isinstance(item, dict) and "ok" in item:
            report = item
    return report


def _stages(data):
    """The stages the worker said it entered, in order."""
    return [item["stage"] for item in _json_lines(data)
            if isinstance(item, dict) and isinstance(item.get("stage"), str)]


def _json_lines(data):
    for line in (data or b"").splitlines():
        try:
            yield json.loads(line)
        except (ValueError, RecursionError):
            continue


def _drain(pipe, cap=STAGES_CAP):
    """What is in a non-blocking pipe now, up to cap bytes."""
    chunks, size = [], 0
    while size < cap:
        chunk = pipe.read(cap - size)
        if not chunk:   # EOF, or None: empty, and a writer that escaped the kill still holds it
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _head(path, cap):
    """The file's bytes, or None when there are more than cap of them."""
    with open(path, "rb") as f:
        data = f.read(cap + 1)
    return data if len(data) <= cap else None


def _tail(path):
    """The last TAIL_BYTES of a file, as text."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
        return f.read(TAIL_BYTES).decode("utf-8", "replace")


def _signal_name(code, wrapped):
    """The signal that ended the student's process: -N from Popen or a fork server, 128+N through `timeout` (user)."""
    if code is None or code == 0:
        return None
    number = -code if code < 0 else code - 128 if wrapped and code > 128 else None
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None
