"""
One jail for a batch of submissions: its zygote (grader/zygote.py) imports torch
once and forks a child per submission, where a fresh jailed process would start
Python and torch again (about 1.5 CPU-seconds each, the larger part of a
submission's grading).

    server, (submission, work) = prepared(root, batch, images, limits)
    # this thread's server (started when needed), its slot emptied, with a copy of the submission
    child = server.run(spec, fds, cpu_s, work)   # wait(timeout), returncode, kill(), as a Popen's
    ...
    close_batch(batch)                           # when the batch is done

The jail is the one every jailed process gets (grader/jail.py). It shows the
zygote's copies of grader/zygote.py, worker.py and check_worker.py and of the
test images (read-only), and one writable folder, the slot, which holds the
submission being graded and its work folder, nothing else. One child runs at
a time. Before the next one starts, the zygote has killed everything the last
child left running and emptied the jail's /tmp, /dev/shm and System V IPC,
and this process has emptied the slot, so no submission sees another's. The
whole jail is killed, and the next submission gets a new one, whenever a child
runs past its deadline or the zygote stops answering (say, a child killed it).

A server belongs to a batch (one grade() call) and to one thread: a Dask worker
grades one submission at a time on each of its threads. It never outlives its
batch in the grader's process; on a Dask worker it lasts until that thread gets
a submission of another batch, or the worker ends (the jail dies with it).
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from . import jail

ZYGOTE = Path(__file__).with_name("zygote.py")
WORKER = Path(__file__).with_name("worker.py")
CHECK_WORKER = Path(__file__).with_name("check_worker.py")   # its probes, when the worker runs the checks too
START_TIMEOUT_S = 120        # Python and torch, on a loaded machine
LIFETIME_S = 24 * 3600       # the jail's own wall-clock kill: a safety net, batches end long before
MESSAGE_BYTES = 1 << 20

_local = threading.local()   # .server: this thread's ForkServer
_servers = set()             # every live server of this process, for close_batch
_lock = threading.Lock()


class ForkServerError(RuntimeError):
    """The jail's zygote did not start, or broke down; the message says what it printed."""


class ForkServer:
    """
    A jailed zygote and its slot. Raises ForkServerError if it does not start.

    Inputs:
    - batch: The batch it belongs to (any string: grade() makes one per call)
    - images: A uint8 .npy file of shape (N, 96, 96), the test images (no labels): copied
    - limits: jail.Limits of each child (the zygote keeps them, but for the wall-clock and CPU
      time: the grader kills a child past its deadline, and a child sets its own CPU limit)
    - parent: Where to make the server's folder (default: the system's temporary folder)
    """

    def __init__(self, batch, images, limits, parent=None):
        self.batch, self.process, self.runs = batch, None, 0
        self.folder = Path(tempfile.mkdtemp(prefix="forkserver-", dir=parent))
        self.folder.chmod(0o711)
        self.slot = self.folder / "slot"
        self.slot.mkdir()
        self.uid = jail.new_uid()
        try:
            copies = [readable_copy(source, self.folder) for source in (ZYGOTE, WORKER, CHECK_WORKER, images)]
            self.worker, self.check_worker, self.images = copies[1:]
            self._start(copies, limits)
        except BaseException:
            self.close()
            raise
        with _lock:
            _servers.add(self)

    def _start(self, copies, limits):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.set_inheritable(True)
        self.control = ours
        seccomp = jail.seccomp_fd()
        jail.give_to(self.slot, self.uid)
        server_limits = replace(limits, timeout_s=LIFETIME_S, cpu_s=LIFETIME_S)
        spec = {"control_fd": theirs.fileno(), "worker": str(self.worker)}
        command = jail.jail_command([sys.executable, "-I", "-B", str(copies[0]), json.dumps(spec)],
                                    limits=server_limits, chdir=self.slot, read_only=copies,
                                    writable=[self.slot], uid=self.uid, seccomp_fd=seccomp)
        try:
            with open(self.folder / "log", "wb") as log:
                self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                pass_fds=(theirs.fileno(), seccomp), start_new_session=True)
        finally:
            theirs.close()
            os.close(seccomp)
        try:
            answer = self._receive(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            answer = None
        if answer != {"ready": True}:
            raise ForkServerError(f"the jail's zygote did not start: {self._log()}")

    def prepare(self, submission_root):
        """
        Empty the slot and copy a submission into it, for the next run. Call it only once the
        last child is done (its wait() returned) or killed. Raises ForkServerError, and kills the
        jail, if the slot cannot be emptied (server_for then starts a new one).

        Returns:
        - (the copy of the submission, the work folder: empty, the child's working folder)
        """
        self.runs += 1
        run = self.slot / f"run-{self.runs}"
        try:   # whatever the last child left there: folders of any mode, files, links
            self.slot.chmod(0o755)
            for old in self.slot.iterdir():
                if old.is_dir() and not old.is_symlink():
                    jail.remove_folder(old)
                else:
                    old.unlink()
            left = list(self.slot.iterdir())
        except OSError as error:
            left = [error]
        if left:   # never show it to another submission: this jail is done
            self.kill()
            raise ForkServerError(f"could not empty the slot {self.slot}: {left[0]}")
        submission, work = run / "unpacked", run / "work"
        shutil.copytree(submission_root, submission, symlinks=True)   # unpacked and checked: plain files
        (work / "tmp").mkdir(parents=True)
        jail.give_to(run, self.uid)
        return submission, work

    def run(self, spec, fds, cpu_s, work):
        """
        Start a child on a worker spec (grader/worker.py), with fds = (result file, stage pipe,
        stdout, stderr) as its own, cpu_s CPU seconds, and the work folder (prepare's) as its
        working folder. Returns its Child.
        """
        order = {"run": spec, "cpu_s": cpu_s, "cwd": str(work)}
        socket.send_fds(self.control, [json.dumps(order).encode()], list(fds))
        return Child(self)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """Kill the whole jail: the zygote, and every child with it (they die with its PID namespace)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            self.process.wait()

    def close(self):
        """Stop the zygote (and so the jail) and remove the server's folder."""
        with _lock:
            _servers.discard(self)
        if getattr(self, "control", None) is not None:
            self.control.close()   # the zygote reads the end of the batch, and exits
        if self.process is not None:
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        jail.remove_folder(self.folder)

    def _receive(self, timeout_s):
        """The zygote's next message (a dict), None if it is gone; subprocess.TimeoutExpired after timeout_s."""
        self.control.settimeout(timeout_s)
        try:
            data = self.control.recv(MESSAGE_BYTES)
        except TimeoutError:
            raise subprocess.TimeoutExpired("zygote", timeout_s) from None
        except OSError:
            return None
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None

    def _log(self):
        text = (self.folder / "log").read_text(errors="replace").strip() if (self.folder / "log").exists() else ""
        return text[-1000:] or (f"exit code {self.process.poll()}" if self.process else "not started")


class Child:
    """A child of a ForkServer, waited for as a Popen is (wait, returncode, kill)."""

    def __init__(self, server):
        self.server, self.returncode = server, None

    def wait(self, timeout=None):
        """Its exit code once it ended and the jail was cleaned; subprocess.TimeoutExpired after timeout."""
        if self.returncode is None:
            answer = self.server._receive(timeout)
            if not (isinstance(answer, dict) and isinstance(answer.get("done"), int)):
                self.server.kill()   # the zygote is gone or broken: so is the jail
                answer = {"done": -9}
            self.returncode = answer["done"]
        return self.returncode

    def kill(self):
        """Kill it, and with it the whole jail (what it started may still run there), unless it ended."""
        if self.returncode is None:
            self.server.kill()
            self.returncode = -9


def server_for(batch, images, limits, parent=None):
    """This thread's ForkServer for batch: the one it has, if alive and of that batch; else a new one."""
    server = getattr(_local, "server", None)
    if server is not None and server.batch == batch and server.alive():
        return server
    if server is not None:
        server.close()
    _local.server = None
    _local.server = ForkServer(batch, images, limits, parent)
    return _local.server


def prepared(submission_root, batch, images, limits, parent=None):
    """
    (this thread's ForkServer for batch, (the submission's copy, the work folder)): server_for's
    server, prepared for the submission; a new one if the last child left the slot unusable.
    """
    server = server_for(batch, images, limits, parent)
    try:
        return server, server.prepare(submission_root)
    except ForkServerError:   # prepare killed that jail: server_for starts another
        server = server_for(batch, images, limits, parent)
        return server, server.prepare(submission_root)


def readable_copy(source, folder):
    """A copy of a file in folder, readable by anyone: a jail's uid reads it (the grader's own folder may
    be root's alone, on a platform). Returns its path."""
    copy = Path(folder) / Path(source).name
    shutil.copyfile(source, copy)
    copy.chmod(0o644)
    return copy


def close_batch(batch):
    """Close every server of batch in this process (any thread's)."""
    with _lock:
        ending = [server for server in _servers if server.batch == batch]
    for server in ending:
        server.close()


@atexit.register
def _close_all():
    with _lock:
        ending = list(_servers)
    for server in ending:
        server.close()
