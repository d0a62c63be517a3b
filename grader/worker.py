"""
The worker: runs one submission's KeypointModel on the test images and sends back
its predictions. grader/sandbox.py starts it as

    python -I -B grader/worker.py SPEC_JSON

SPEC_JSON says where the submission and the images are, which file descriptor
takes the result, and (with isolation) how to build the jail. The worker never
gets the labels or the path of the test file: only the images, as a uint8 .npy
array of shape (N, 96, 96).

In a jail (Linux namespaces made by `unshare`), the worker starts as PID 1 of a
new PID namespace, with root's powers over a new mount namespace only. It
builds a minimal root filesystem in a tmpfs (read-only bind mounts of the
system, of Python and of this submission; tmpfs for the scratch folders),
pivots into it and unmounts the host's root, so nothing else of the machine is
there to read. Then it forks: the child drops to an unprivileged user and runs
the student's code, PID 1 waits for it and passes on its exit status.

Until the jail is up this file uses the standard library only. Once student
code is imported nothing in this process can be trusted, so the parent reads
one thing from it, the predictions, and checks and scores them itself. It
writes JSON lines (never a pickle) to the result descriptor: one {"stage": ...}
line as it enters each stage (so a timeout can say where it happened), then the
result:

    {"ok": true, "shape": [N, 30], "predictions": [N * 30 floats], "timings": {...}}
    {"ok": false, "stage": "import" | "model_file" | "build" | "load" | "predict",
     "error": "ValueError: ...", "traceback": "...", "out_of_memory": false}
"""
import ctypes
import json
import os
import platform
import sys
import time
import traceback

STARTED = time.perf_counter()

# Linux constants from <sys/mount.h>, <sys/prctl.h> and the syscall tables.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# statvfs flag -> mount flag. A read-only remount inside a user namespace must keep
# the flags the host locked on the mount (nodev, noexec, atime), or it is refused.
KEEP_FLAGS = {os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC, os.ST_NOSUID: MS_NOSUID,
              os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}
TRACEBACK_CHARS = 4000

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype=None, flags=0, data=None):
    encode = lambda s: None if s is None else str(s).encode()  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {source} on {target}")


def _make_mount_point(path, is_dir):
    os.makedirs(path if is_dir else os.path.dirname(path), exist_ok=True)
    if not is_dir and not os.path.exists(path):
        open(path, "w").close()


def build_jail(jail):
    """
    Build the minimal root described by jail and pivot into it (we are PID 1 of new namespaces).

    Inputs:
    - jail: Dict with
      - root: An empty folder on the host; a tmpfs is mounted on it and becomes "/"
      - binds: List of [host path, path in the jail, "ro" | "dev"]
      - symlinks: List of [path in the jail, link target] (e.g. /lib -> usr/lib)
      - tmpfs: List of [path in the jail, size in MB, owner uid]
    """
    root = jail["root"]
    _mount(None, "/", flags=MS_REC | MS_PRIVATE)      # nothing we mount may leak to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    for source, target, kind in jail["binds"]:
        inside = root + target
        _make_mount_point(inside, os.path.isdir(source))
        _mount(source, inside, flags=MS_BIND | MS_REC)
        if kind == "ro":  # bind mounts start writable; only a remount makes them read-only
            locked = os.statvfs(inside).f_flag
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
            flags |= sum(ms for st, ms in KEEP_FLAGS.items() if locked & st)
            _mount(None, inside, flags=flags)
    for target, link in jail["symlinks"]:
        os.makedirs(os.path.dirname(root + target), exist_ok=True)
        os.symlink(link, root + target)
    for target, size_mb, uid in jail["tmpfs"]:
        os.makedirs(root + target, exist_ok=True)
        _mount("tmpfs", root + target, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={size_mb}m,mode={'0700' if uid is not None else '1777'}"
               + (f",uid={uid},gid={uid}" if uid is not None else ""))
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace only

    # pivot_root(".", ".") stacks the old root under the new one; detaching it
    # leaves no path back to the host's files.
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "unmount the host's root")
    os.chdir("/")
    _mount(None, "/", flags=MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def fork_and_drop(uid):
    """
    Fork; in the parent (PID 1) wait for the child and exit with its status.
    In the child, drop to uid (None: stay, as in a user namespace) and return.
    """
    pid = os.fork()
    if pid == 0:
        _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        return
    # PID 1 of the namespace: reap every process until our child is gone. When we
    # exit, the kernel kills whatever the student left running in the namespace.
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if done == pid:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))


def failure(stage, error):
    """The result for an exception raised by the student's code (or ours) at stage."""
    report = traceback.TracebackException.from_exception(error)
    # Our own frames say nothing to the student (and their source is not in the jail).
    report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != __file__])
    text = "".join(report.format())
    message = f"{type(error).__name__}: {error}"
    memory = isinstance(error, MemoryError) or "can't allocate memory" in message or "DefaultCPUAllocator" in message
    return {"ok": False, "stage": stage, "error": message[:TRACEBACK_CHARS],
            "traceback": text[-TRACEBACK_CHARS:], "out_of_memory": memory}


def predict(spec, out):
    """Import the submission's code, rebuild its model, and predict the images. Returns the result dict."""
    timings, stage = {}, None

    def lap(name):
        timings[name] = round(time.perf_counter() - STARTED - sum(timings.values()), 4)

    def enter(name):
        nonlocal stage
        stage = name
        out.write(json.dumps({"stage": name}) + "\n")
        out.flush()

    try:
        enter("startup")
        import numpy as np
        import torch
        torch.set_num_threads(spec["threads"])
        lap("startup_s")
        enter("import")
        # The student's package must be the one `import exercise_code` finds.
        sys.path.insert(0, spec["submission"])
        from exercise_code.networks import KeypointModel
        lap("import_code_s")
        enter("model_file")
        model_file = os.path.join(spec["submission"], spec["model_entry"])
        contents = torch.load(model_file, map_location="cpu", weights_only=True)  # plain data, no code
        enter("build")
        model = KeypointModel(json.loads(contents["hparams_json"]))
        enter("load")
        model.load_state_dict(contents["state_dict"], strict=True)
        model.eval()
        lap("load_s")
        enter("predict")
        images = torch.from_numpy(np.load(spec["images"], allow_pickle=False))   # (N, 96, 96) uint8
        images = images.unsqueeze(1).float().div_(255)                         # (N, 1, 96, 96), as the dataset
        outputs = []
        with torch.inference_mode():
            for batch in images.split(spec["batch_size"]):
                output = model(batch)
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"forward returned a {type(output).__name__}, not a tensor")
                outputs.append(output.detach().float().cpu())                 # float32, as evaluate_model
        predictions = torch.cat(outputs)
        lap("predict_s")
    except BaseException as error:  # SystemExit and KeyboardInterrupt from student code included
        return failure(stage, error)
    return {"ok": True, "shape": list(predictions.shape), "predictions": predictions.flatten().tolist(),
            "timings": timings}


def main(argv):
    spec = json.loads(argv[1])
    out = os.fdopen(spec["result_fd"], "w")
    if spec.get("jail"):
        try:
            build_jail(spec["jail"])
        except OSError as error:
            out.write(json.dumps({"ok": False, "stage": "jail", "error": f"could not build the jail: {error}"}) + "\n")
            out.flush()
            os._exit(3)
        fork_and_drop(spec["jail"]["uid"])
    os.chdir(spec["workdir"])
    if spec.get("probe"):  # grader.sandbox checks once what isolation works here
        result = {"ok": True, "uid": os.getuid(), "root": sorted(os.listdir("/"))}
    else:
        result = predict(spec, out)
    out.write(json.dumps(result) + "\n")
    out.flush()
    os._exit(0)  # skip atexit handlers and threads the student's code may have left behind


if __name__ == "__main__":
    main(sys.argv)
