"""
Step 4: run grader/worker.py on one submission, inside limits and, where the OS
allows it, inside a jail.

Isolation levels (the strongest that works is picked once per run, and each
result records which one was in force):
- "namespaces" (as root): `unshare` gives the worker new network, mount, PID,
  IPC and UTS namespaces; the worker builds a minimal read-only root (system,
  Python, this submission, the test images; tmpfs for scratch) and runs the
  student's code as an unprivileged uid of its own. No network, no other files.
- "userns" (not root, user namespaces allowed): the same namespaces inside a
  new user namespace; the student's code runs as the namespace's root, which
  owns nothing outside the jail.
- "none": no namespaces. The worker still gets the limits, a scratch working
  folder and a minimal environment, but it can use the network and read every
  file the grader's user can read, the hidden test file included.

Every level applies rlimits (address space, CPU seconds, file size, no core
dumps) and a wall-clock timeout, after which the whole process group is killed
(and with namespaces everything in the PID namespace dies with it).
"""
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from exercise_code.submission import MODEL_ENTRY

WORKER = Path(__file__).with_name("worker.py")
ISOLATIONS = ("namespaces", "userns", "none")
DESCRIPTIONS = {
    "namespaces": "network, mount, PID, IPC and UTS namespaces; a minimal read-only root holding only the system, "
                  "Python, the submission and the test images; an unprivileged uid; rlimits and a timeout",
    "userns": "a user namespace with network, mount, PID, IPC and UTS namespaces; a minimal read-only root holding "
              "only the system, Python, the submission and the test images; rlimits and a timeout",
    "none": "rlimits, a timeout and a scratch folder only: NO network or filesystem isolation, the worker could "
            "read any file the grader's user can read (the hidden test file included)",
}
UNSHARE = ["unshare", "--net", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
PREFIXES = {"namespaces": UNSHARE, "userns": UNSHARE[:1] + ["--user", "--map-root-user"] + UNSHARE[1:], "none": []}
# Each jailed worker gets a uid of its own from this range (no passwd entry needed):
# RLIMIT_NPROC counts per uid, so a fork bomb cannot starve a worker running beside it.
WORKER_UIDS = range(200_000, 1_000_000)
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]
SYSTEM_FILES = ["/etc/ld.so.cache"]
DEVICES = ["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"]
IN_JAIL = {"submission": "/sandbox/submission", "images": "/sandbox/images.npy", "work": "/sandbox/work"}
TMPFS_MB = {"/sandbox/work": 64, "/tmp": 256, "/dev/shm": 64}  # scratch the student's code may fill
TAIL_BYTES = 8000          # the end of stdout/stderr we keep for the student
FILE_MB = 64               # RLIMIT_FSIZE
PROCESSES = 256            # RLIMIT_NPROC, per worker uid (namespaces only)


class IsolationError(RuntimeError):
    """The requested isolation does not work on this machine; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    """
    - timeout_s: Wall-clock seconds for the whole worker (start, import, load, predict)
    - memory_mb: Address-space limit of the worker process, in MB
    - threads: torch threads in the worker
    """
    timeout_s: float
    memory_mb: int
    threads: int = 1

    def cpu_seconds(self):
        """The CPU-time backstop: the timeout on every thread, and a margin."""
        return math.ceil(self.timeout_s * self.threads) + 10


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
    """The host paths the jail shows to the worker's code (bind sources): none without a jail."""
    if isolation == "none":
        return []
    python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    return [p for p in SYSTEM_DIRS + SYSTEM_FILES if os.path.exists(p) and not os.path.islink(p)] + sorted(python)


def jail_spec(root, submission_root, images, uid):
    """The worker's jail: what to mount where (see worker.build_jail)."""
    binds = [[p, p, "ro"] for p in exposed_paths("namespaces")]
    binds += [[str(submission_root), IN_JAIL["submission"], "ro"], [str(images), IN_JAIL["images"], "ro"]]
    binds += [[d, d, "dev"] for d in DEVICES if os.path.exists(d)]
    symlinks = [[p, os.readlink(p)] for p in SYSTEM_DIRS if os.path.islink(p)]   # merged /usr: /lib -> usr/lib
    tmpfs = [[path, size, uid if path == IN_JAIL["work"] else None] for path, size in TMPFS_MB.items()]
    return {"root": str(root), "binds": binds, "symlinks": symlinks, "tmpfs": tmpfs, "uid": uid}


def run_worker(*, submission_root, images, scratch, limits, isolation, probe=False):
    """
    Run the worker on one submission and collect what it sends back.

    Inputs:
    - submission_root: Folder holding the submission's models/ and exercise_code/
    - images: A uint8 .npy file of shape (N, 96, 96), the test images (no labels)
    - scratch: An empty folder this run may use
    - limits: Limits
    - isolation: One of ISOLATIONS
    - probe: Only set up the isolation and report (see detect_isolation)

    Returns:
    - WorkerRun
    """
    scratch = Path(scratch)
    jailed = isolation != "none"
    uid = random.SystemRandom().choice(WORKER_UIDS) if isolation == "namespaces" else None
    workdir = IN_JAIL["work"] if jailed else scratch / "work"
    if not jailed:
        (scratch / "work" / "tmp").mkdir(parents=True)
    read_end, write_end = os.pipe()
    spec = {
        "result_fd": write_end, "workdir": str(workdir), "threads": limits.threads, "batch_size": 64,
        "submission": IN_JAIL["submission"] if jailed else str(submission_root),
        "images": IN_JAIL["images"] if jailed else str(images),
        "model_entry": MODEL_ENTRY, "probe": probe,
        "jail": jail_spec(_empty_dir(scratch / "root"), submission_root, images, uid) if jailed else None,
    }
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir),
           "TMPDIR": "/tmp" if jailed else str(workdir / "tmp"), "MALLOC_ARENA_MAX": "2",
           "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads)}
    command = PREFIXES[isolation] + [sys.executable, "-I", "-B", str(WORKER), json.dumps(spec)]
    start = time.perf_counter()
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(write_end,), env=env, cwd=workdir if not jailed else scratch,
            start_new_session=True,   # one process group: a timeout kills all of it
            preexec_fn=lambda: _set_limits(limits, isolation))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)   # the worker holds the only write end: EOF when it is gone
    readers = [_Reader(open(read_end, "rb", buffering=0), keep="all"), _Reader(process.stdout),
               _Reader(process.stderr)]
    timed_out = False
    try:
        process.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # on a timeout, when interrupted, and for what a finished worker left running (without
        try:  # namespaces; with them, those died with the PID namespace): never leave a process behind
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


def detect_isolation(choice="auto"):
    """
    The isolation to use: for "auto" the strongest that works here, else choice
    itself after checking that it works. Raises IsolationError if it does not.
    """
    if choice not in ("auto",) + ISOLATIONS:
        raise IsolationError(f"Unknown isolation {choice!r}; choose one of auto, {', '.join(ISOLATIONS)}")
    candidates = [choice] if choice != "auto" else (["namespaces"] if os.geteuid() == 0 else []) + ["userns", "none"]
    problems = []
    for isolation in candidates:
        problem = _probe(isolation)
        if problem is None:
            return isolation
        problems.append(f"{isolation}: {problem}")
    raise IsolationError("No isolation works here (" + "; ".join(problems) + ").")


def _probe(isolation):
    """None if a worker can start with this isolation, else what went wrong."""
    if isolation != "none" and not (sys.platform.startswith("linux") and shutil.which("unshare")):
        return "needs Linux and util-linux's `unshare` command"
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as scratch:
        images = Path(scratch) / "images.npy"
        images.write_bytes(b"")
        (Path(scratch) / "submission").mkdir()
        run = run_worker(submission_root=Path(scratch) / "submission", images=images, scratch=scratch,
                         limits=Limits(timeout_s=30, memory_mb=1024), isolation=isolation, probe=True)
    if run.report and run.report.get("ok"):
        return None
    detail = (run.report or {}).get("error") or run.stderr.strip().splitlines()[-1:] or [f"exit code {run.exit_code}"]
    return detail if isinstance(detail, str) else detail[0]


def _set_limits(limits, isolation):
    """In the child before exec (so unshare, the worker and the student's code all inherit them)."""
    memory = limits.memory_mb * 2 ** 20
    cpu = limits.cpu_seconds()
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))       # SIGXCPU first, SIGKILL 5 s later
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_MB * 2 ** 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if isolation == "namespaces":  # per worker uid; elsewhere it would count all of the grader's processes
        resource.setrlimit(resource.RLIMIT_NPROC, (PROCESSES, PROCESSES))


def _empty_dir(path):
    path.mkdir(mode=0o755)
    return path


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
    """The signal that ended the student's process: -N from Popen, 128+N from the jail's init and unshare."""
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
