"""
Step 4: run grader/worker.py on one submission, in the jail (grader/jail.py),
and collect what it sends back.

The worker sees the system and Python read-only, the submission and the test
images (no labels) read-only, its own writable work folder, and nothing else:
no network, no other process, no hidden data, no results. It runs as a fresh
unprivileged uid under rlimits and a wall-clock kill (see grader/jail.py).

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
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from exercise_code.util.submission import MODEL_ENTRY

from . import jail

WORKER = Path(__file__).with_name("worker.py")
TAIL_BYTES = 8000          # the end of stdout/stderr we keep for the student


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
    """The host paths the jail shows to every worker besides its own files: none without a jail."""
    return [] if isolation == "none" else ["/usr", *jail.python_paths()]


def run_worker(*, submission_root, images, scratch, limits, isolation):
    """
    Run the worker on one submission and collect what it sends back.

    Inputs:
    - submission_root: Folder holding the submission's models/ and exercise_code/
    - images: A uint8 .npy file of shape (N, 96, 96), the test images (no labels)
    - scratch: An empty folder this run may use
    - limits: jail.Limits
    - isolation: "jail" or "none" (checked by detect_isolation)

    Returns:
    - WorkerRun
    """
    jailed = isolation == "jail"
    work = Path(scratch) / "work"
    (work / "tmp").mkdir(parents=True)
    read_end, write_end = os.pipe()
    spec = {"result_fd": write_end, "threads": limits.threads, "batch_size": 64, "submission": str(submission_root),
            "images": str(images), "model_entry": MODEL_ENTRY}
    command = [sys.executable, "-I", "-B", str(WORKER), json.dumps(spec)]
    seccomp = jail.seccomp_fd() if jailed else None
    if jailed:
        uid = jail.new_uid()
        jail.give_to(work, uid)
        command = jail.jail_command(command, limits=limits, chdir=work, read_only=[submission_root, images, WORKER],
                                    writable=[work], uid=uid, seccomp_fd=seccomp)
    env = {**jail.BASE_ENV, "HOME": str(work), "TMPDIR": str(work / "tmp"), "MPLCONFIGDIR": str(work / "tmp"),
           "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads)}
    start = time.perf_counter()
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(write_end,) + ((seccomp,) if jailed else ()), env=env, cwd=work,
            start_new_session=True,   # one process group: a timeout kills all of it
            preexec_fn=None if jailed else lambda: jail.apply_limits(limits))   # in the jail, prlimit sets them
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)   # the worker holds the only write end: EOF when it is gone
        if seccomp is not None:
            os.close(seccomp)
    readers = [_Reader(open(read_end, "rb", buffering=0), keep="all"), _Reader(process.stdout),
               _Reader(process.stderr)]
    timed_out = False
    try:
        process.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # on a timeout, when interrupted, and for what a finished worker left running (in the
        try:  # jail, those die with its PID namespace when bwrap goes): never leave a process behind
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    for reader in readers:
        reader.join(timeout=5)   # a process that escaped the group may hold a pipe open; the reader closes it
    report, stages = _parse_lines(readers[0].data())
    return WorkerRun(report=report, stage=stages[-1] if stages else None, student_code_ran="import" in stages,
                     seconds=time.perf_counter() - start, timed_out=timed_out, exit_code=process.returncode,
                     signal_name=_signal_name(process.returncode, jailed), stderr=readers[2].text(),
                     stdout=readers[1].text())


def detect_isolation(choice="jail"):
    """
    The isolation to grade with: "jail" ("auto" is the same) after checking that
    the jail starts here, or "none" when asked for by name. Never falls back:
    raises IsolationError, saying what to install, when the jail cannot start.
    """
    choice = "jail" if choice == "auto" else choice
    try:
        return jail.require(choice)
    except jail.JailUnavailable as error:
        raise IsolationError(str(error)) from None


def _parse_lines(data):
    """
    The worker's JSON lines: its result (the last line with "ok"; NaN and
    Infinity are allowed here, the predictions are checked later), or None when
    missing or broken, and the list of stages it entered.
    """
    report, stages = None, []
    for line in (data or b"").splitlines():
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(item, dict) and "ok" in item:
            report = item
        elif isinstance(item, dict) and isinstance(item.get("stage"), str):
            stages.append(item["stage"])
    return report, stages


def _signal_name(code, jailed):
    """The signal that ended the student's process: -N from Popen, 128+N through bwrap and timeout."""
    if code is None or code == 0:
        return None
    number = -code if code < 0 else code - 128 if jailed and code > 128 else None
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None


class _Reader(threading.Thread):
    """Drain a pipe (a binary file object, closed when done); keep all of it (up to a cap) or only its tail."""
    CAP = 64 * 2 ** 20   # the predictions of 100,000 test faces fit

    def __init__(self, stream, keep="tail"):
        super().__init__(daemon=True)
        self.stream, self.keep, self.chunks, self.size, self.overflow = stream, keep, [], 0, False
        self.start()

    def run(self):
        with self.stream:
            # read1 on a buffered pipe returns what is there; a raw file's read does the same
            read = getattr(self.stream, "read1", self.stream.read)
            while chunk := read(1 << 16):
                self.chunks.append(chunk)
                self.size += len(chunk)
                if self.keep == "tail":
                    while self.size - len(self.chunks[0]) >= TAIL_BYTES:
                        self.size -= len(self.chunks.pop(0))
                elif self.size > self.CAP:   # keep draining, so the writer never blocks, but drop it all
                    self.chunks, self.size, self.overflow = [], 0, True

    def data(self):
        return None if self.overflow or not self.chunks else b"".join(self.chunks)

    def text(self):
        return b"".join(self.chunks)[-TAIL_BYTES:].decode("utf-8", "replace")
