"""
The zygote: a jailed process that imports torch once and forks one child per
submission, each child running grader/worker.py as a fresh process would.
grader/forkserver.py starts it, inside the jail (grader/jail.py), as

    python -I -B grader/zygote.py SPEC_JSON

and talks to it over a unix socket (SPEC_JSON's "control_fd", SOCK_SEQPACKET),
one JSON message each way at a time:

    grader -> zygote   {"run": worker spec, "cpu_s": CPU seconds, "cwd": working folder}, with
                       4 file descriptors: the child's result file, stage pipe, stdout and stderr
    zygote -> grader   {"ready": true} once torch is imported (then it waits)
                       {"done": exit code} once the child ended AND everything it
                       left is gone (Popen's returncode: -N for signal N)

Starting Python and importing torch costs a jailed process about 1.5 CPU-seconds;
a fork costs a hundredth of that. Nothing of a student's run may reach the next
one, so before it says "done" the zygote

- kills every process of the jail but itself and its ancestors, pass after pass
  until none is left (a fork between two passes is found by the next);
- empties the jail's /tmp and /dev/shm, and removes its System V IPC objects
  (the grader empties the slot: the submission and the work folder);
- and it is not dumpable, so no child (same uid, no capabilities) may read or
  write its memory through /proc; the jail's seccomp filter refuses ptrace.

Only our code runs in the zygote: the child closes the control socket before it
imports the student's code, and the zygote never reads what a child wrote. If
anything goes wrong here, the zygote exits, and the grader kills the whole jail
and starts another for the next submission.
"""
import ctypes
import importlib.util
import json
import os
import re
import resource
import signal
import socket
import sys
import time
from pathlib import Path

CLEAN_S = 5               # a jail not empty after this long: give up, the grader kills it
PR_SET_DUMPABLE = 4
IPC_RMID = 0
EMPTIED = ("/tmp", "/dev/shm")


def main(argv):
    spec = json.loads(argv[1])
    control = socket.socket(fileno=spec["control_fd"])
    worker = _load(spec["worker"])
    # What every child needs, imported once (the point of the zygote): numpy and torch for the model,
    # pandas for the dataset's check (the pack's CSV reader). Only installed libraries: no student code yet.
    for name in ("numpy", "torch", "pandas"):
        importlib.import_module(name)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_DUMPABLE, 0) failed")
    control.sendall(json.dumps({"ready": True}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        if not message:   # the grader closed the socket: the batch is over
            return
        if len(fds) != 4:
            sys.exit(f"expected 4 file descriptors with the run, got {len(fds)}")
        order = json.loads(message)
        pid = os.fork()
        if pid == 0:
            _child(worker, control, order, fds)
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        clean(libc)
        control.sendall(json.dumps({"done": os.waitstatus_to_exitcode(status)}).encode())


def _child(worker, control, order, fds):
    """In the forked child: take the run's descriptors, drop everything else of the zygote's, run the worker."""
    try:
        control.close()
        result_fd, stage_fd, out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        keep = {0, 1, 2, result_fd, stage_fd}
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        cpu_s = order["cpu_s"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))   # a child's own CPU time, from zero
        os.chdir(order["cwd"])
        worker.STARTED = time.perf_counter()
        # As `python -I -B worker.py SPEC_JSON` would have them: the student's code may read them.
        sys.argv = [worker.__file__, json.dumps({**order["run"], "result_fd": result_fd, "stage_fd": stage_fd})]
        worker.main(sys.argv)
    finally:   # main ends with os._exit(0): only a failure of ours gets here
        os._exit(70)


def clean(libc):
    """Kill what the last child left running, empty /tmp and /dev/shm, remove System V IPC objects."""
    keep = {os.getpid(), *_ancestors()}
    deadline = time.monotonic() + CLEAN_S
    while True:
        others = [pid for pid in _pids() if pid not in keep and not _zombie(pid)]
        if not others:
            break
        if time.monotonic() > deadline:
            sys.exit(f"processes {others[:5]} outlived {CLEAN_S} s of SIGKILL")
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap()
        time.sleep(0.001)
    _reap()
    mounts = _mount_points()
    around = {str(parent) for point in mounts for parent in Path(point).parents}   # the folders bwrap made
    for top in EMPTIED:
        _empty(top, mounts, around)
    for shm in _ipc_ids("shm"):
        _check(libc.shmctl(shm, IPC_RMID, None), "shared memory segment", shm)
    for sem in _ipc_ids("sem"):
        _check(libc.semctl(sem, 0, IPC_RMID), "semaphore set", sem)
    for msg in _ipc_ids("msg"):
        _check(libc.msgctl(msg, IPC_RMID, None), "message queue", msg)


def _check(code, what, ipc_id):
    if code != 0:
        sys.exit(f"could not remove the System V {what} {ipc_id}: errno {ctypes.get_errno()}")


def _load(path):
    """grader/worker.py, copied beside this file, as a module (it uses the standard library until it runs)."""
    found = importlib.util.spec_from_file_location("worker", path)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ancestors():
    """Our parent, its parent, ... up to the jail's init (pid 1): never killed."""
    found, pid = set(), os.getppid()
    while pid > 0:
        found.add(pid)
        pid = _stat(pid)[1] if pid != 1 else 0
    return found


def _stat(pid):
    """(state, parent pid) of a process, from /proc/PID/stat (its name, in parentheses, may hold anything)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "X", 0
    return fields[0], int(fields[1])


def _zombie(pid):
    return _stat(pid)[0] in "ZX"


def _reap():
    """Collect our ended children (orphans of the child go to the jail's init, which collects them)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _empty(folder, mounts, around):
    """Remove what is in folder but the jail's own mounts (the slot, our files) and the folders leading to them."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if path in mounts:
            continue
        if path in around:
            _empty(path, mounts, around)
        else:
            _remove(path)


def _remove(path):
    """Remove a file or a folder tree, whatever modes the child gave it (it was ours: same uid)."""
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        for name in os.listdir(path):
            _remove(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def _mount_points():
    """The jail's mount points, from /proc/self/mountinfo (its 5th field, with octal escapes for spaces)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return {re.sub(r"\\([0-7]{3})", lambda found: chr(int(found.group(1), 8)), point) for point in points}


def _ipc_ids(kind):
    """The ids of this IPC namespace's System V objects of a kind ("shm", "sem", "msg")."""
    with open(f"/proc/sysvipc/{kind}") as f:
        return [int(line.split()[1]) for line in f.readlines()[1:] if line.strip()]


if __name__ == "__main__":
    main(sys.argv)
