"""
The one jail for student code: bubblewrap (`bwrap`, Debian package `bubblewrap`).

Everything that runs a student's code goes through `jail_command`: the model
worker of `python -m grader` (grader/sandbox.py; one jail per batch, whose
zygote forks a child per submission: grader/forkserver.py), the check worker
(grader/trusted_checks.py) and every notebook kernel of `nbgrader autograde`
(grader/kernel_jail.py). What a jailed process gets:

- its own PID, network, IPC and UTS namespaces (and cgroup, where it can):
  no other process in /proc, no network at all (not even the host's loopback);
- a root made of the system (/usr, read-only), the running Python's folders
  (read-only), the folders the caller names (read-only or writable), a private
  /tmp and /dev/shm, and nothing else: no home, no course, no hidden data;
- a cleared environment plus an allow-list;
- as root: a fresh random uid with no capabilities and no_new_privs; as
  another user: a user namespace that keeps that user's uid, with no further
  user namespaces allowed;
- a seccomp filter (libseccomp) refusing new namespaces, mount, ptrace,
  bpf, keyrings, module loading and tty injection;
- rlimits on address space, CPU time, processes, file size and core dumps, a
  wall-clock kill, and death with its parent.

If the jail cannot start, `require("jail")` raises JailUnavailable saying what
to install: callers refuse to run rather than run the code unjailed. Two other
isolations exist, and each is only ever used when asked for by name:

- "user", for the model grader inside a platform's container (Gradescope,
  PrairieLearn), where Docker's seccomp profile stops the jail: the grader runs
  as root, and the student's code as a fresh unprivileged uid with the same
  rlimits, wall-clock kill and seccomp-free no_new_privs, and every process of
  that uid is killed afterwards (kill_uid). Files are what keeps the secrets:
  the grader refuses to start unless a stranger's uid, tried for real, cannot
  read the hidden data, the results or the grader's own files (unreadable).
  It does not hide the network or the process list.
- "none": no isolation at all.
"""
import ctypes
import ctypes.util
import errno
import functools
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ISOLATIONS = ("jail", "user", "none")
KERNEL_ISOLATIONS = ("jail", "none")   # notebooks and their checks: "user" is for the model grader only
DESCRIPTIONS = {
    "jail": "bubblewrap: no network, no other processes, only the system, Python and the files it needs "
            "(read-only), a fresh unprivileged uid, seccomp, rlimits and a wall-clock kill",
    "user": "a fresh unprivileged uid (asked for by name, for platform containers where the jail cannot start): "
            "rlimits, a wall-clock kill, every process of the uid killed after it, and the hidden data, the results "
            "and the grader readable by root only (tried before grading); it shares the network and sees processes",
    "none": "NO isolation (asked for by name): the code runs as the grader's user and can read and write "
            "whatever that user can, the hidden test data included",
}
INSTALL_HINT = ("Install bubblewrap and libseccomp (Debian/Ubuntu, as root: apt-get install bubblewrap libseccomp2; "
                "`make setup` does this when run as root). As a normal user, unprivileged user namespaces must be "
                "enabled (sysctl kernel.unprivileged_userns_clone=1). Inside a Docker container, the default "
                "seccomp profile blocks namespaces: grade on the host or in a VM. Only if you accept that student "
                "code can read the hidden data, opt out by name with isolation 'none'.")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")   # merged /usr: /lib -> usr/lib
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts")   # fonts: matplotlib's fontconfig
UIDS = range(200_000, 1_000_000)   # a fresh uid per jail: RLIMIT_NPROC then counts per jail
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp",
            "MPLCONFIGDIR": "/tmp", "MPLBACKEND": "Agg", "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1"}

# Syscalls a student's code never needs and a jail breaker would (see seccomp_filter).
DENIED_SYSCALLS = ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
                   "process_vm_writev", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
                   "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
                   "swapon", "swapoff", "io_uring_setup", "open_tree", "move_mount", "fsopen", "fsconfig",
                   "fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at", "acct",
                   "settimeofday", "clock_settime", "adjtimex", "syslog", "quotactl", "lookup_dcookie", "vhangup")
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
                         0x00000080)   # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
TTY_INJECTION = (0x5412, 0x541C)       # ioctl TIOCSTI, TIOCLINUX


class JailUnavailable(RuntimeError):
    """The jail cannot start here; the message says what is missing and how to install it."""


@dataclass(frozen=True)
class Limits:
    """
    What one jailed process tree may use.

    - timeout_s: Wall-clock seconds, after which everything in the jail is killed
    - memory_mb: Address-space limit of each process, in MB
    - cpu_s: CPU seconds per process (SIGXCPU, then SIGKILL); default timeout_s * threads + 10
    - threads: Threads for numerical libraries (OMP_NUM_THREADS and friends)
    - processes: Processes and threads the jail's uid may have at once
    - file_mb: Largest file it may write
    - tmp_mb: Size of its private /tmp (and of /dev/shm)
    """
    timeout_s: float
    memory_mb: int
    cpu_s: int | None = None
    threads: int = 1
    processes: int = 256
    file_mb: int = 64
    tmp_mb: int = 256

    def cpu_seconds(self):
        return self.cpu_s if self.cpu_s is not None else int(self.timeout_s * self.threads) + 10


def jail_command(argv, *, limits, chdir, read_only=(), writable=(), env=None, uid=None, seccomp_fd=None):
    """
    The command line that runs argv in the jail.

    Inputs:
    - argv: The command to run inside (its program must be in a folder the jail shows)
    - limits: Limits
    - chdir: The working folder inside the jail (one of `writable` or `read_only`, or /tmp)
    - read_only: Host paths shown read-only, at the same path
    - writable: Host folders shown writable, at the same path, or (source, target) pairs to show
      source at target (as root, chown them to uid first: see give_to)
    - env: Extra environment variables, on top of BASE_ENV (nothing else of the caller's gets in)
    - uid: The uid to run as (as root; new_uid()); ignored for other users, who keep their own
    - seccomp_fd: A file descriptor holding the filter (seccomp_fd()); it must be passed to the child

    Returns:
    - List of strings: bwrap ... -- timeout ... prlimit ... [setpriv ...] -- argv
    """
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--hostname", "jail"]
    as_root = os.geteuid() == 0
    if as_root:   # no user namespace as root: it would map the jail's uid 0 to the host's root
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]   # just enough for setpriv to drop to uid, and then drop these
    else:
        args += ["--unshare-user", "--disable-userns"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    tmp_bytes = str(limits.tmp_mb * 2 ** 20)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/dev/shm", "--ro-bind", "/usr", "/usr"]
    args += [op for link in SYSTEM_LINKS if os.path.islink(link) for op in ("--symlink", os.readlink(link), link)]
    args += [op for path in SYSTEM_FILES if os.path.exists(path) for op in ("--ro-bind", path, path)]
    # After the tmpfs, so a Python or a folder below /tmp is shown too; parents before children.
    shown = [(Path(p).resolve(), Path(p).resolve(), "--ro-bind") for p in [*python_paths(), *read_only]]
    shown += [(Path(source).resolve(), Path(target).resolve(), "--bind")
              for source, target in (p if isinstance(p, tuple) else (p, p) for p in writable)]
    for source, target, how in sorted(set(shown), key=lambda item: len(item[1].parts)):
        for parent in reversed(target.parents[:-1]):   # bwrap would make missing parents 0700: unreachable
            if not _is_system(parent):
                args += ["--perms", "0755", "--dir", str(parent)]
        args += [how, str(source), str(target)]
    args += ["--remount-ro", "/", "--chdir", str(chdir), "--clearenv"]
    threads = str(limits.threads)
    for name, value in {**BASE_ENV, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                        "OPENBLAS_NUM_THREADS": threads, **(env or {})}.items():
        args += ["--setenv", name, str(value)]
    args.append("--")
    return args + limited_command(argv, limits=limits, uid=(uid if uid is not None else new_uid()) if as_root else None)


def limited_command(argv, *, limits, uid=None):
    """
    argv under a wall-clock kill and rlimits, and, given a uid (as root), as that
    uid with no groups, no capabilities and no_new_privs. Inside the jail, and
    alone for isolation "user".

    Returns:
    - List of strings: timeout ... prlimit ... [setpriv ...] -- argv
    """
    args = [shutil.which("timeout") or "/usr/bin/timeout", "--signal=KILL", f"{limits.timeout_s:g}",
            shutil.which("prlimit") or "/usr/bin/prlimit", f"--as={limits.memory_mb * 2 ** 20}",
            f"--cpu={limits.cpu_seconds()}:{limits.cpu_seconds() + 5}", f"--fsize={limits.file_mb * 2 ** 20}",
            f"--nproc={limits.processes}", "--core=0", "--"]
    return args + (as_uid(uid) if uid is not None else []) + list(argv)


def as_uid(uid):
    """The command prefix (setpriv, as root) that runs what follows as uid, with no groups or capabilities."""
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


KILL_ALL = "import os\ntry:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\n"


def kill_uid(uid):
    """
    Kill every process of a uid (isolation "user"): what the student's code left
    running, in the background or in a session of its own. A process of that uid
    sends SIGKILL to -1, which the kernel delivers to every process it may signal,
    all of that uid's, atomically (no fork can slip past it), but not itself.
    """
    subprocess.run(as_uid(uid) + [sys.executable, "-I", "-S", "-c", KILL_ALL], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=30, check=False)


def unreadable_problem(paths):
    """
    Isolation "user": None when a fresh uid, tried for real, can neither read nor
    list any of paths, nor anything under them (files and folders, found by root,
    so a file in a folder it may pass through but not list counts too); else a
    message naming what it could read and how to close it.
    """
    found = []
    for top in map(Path, paths):
        found.append(top)
        if top.is_dir() and not top.is_symlink():
            found += [Path(here) / name for here, dirs, files in os.walk(top) for name in dirs + files]
    probe = ("import json, os, sys\nreadable = []\n"
             "for path in json.load(sys.stdin):\n"
             "    try:\n"
             "        os.listdir(path) if os.path.isdir(path) else open(path, 'rb').close()\n"
             "        readable.append(path)\n"
             "    except OSError:\n"
             "        pass\n"
             "print(json.dumps(readable))\n")
    uid = new_uid()
    try:
        run = subprocess.run(as_uid(uid) + [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                             input=json.dumps([str(p) for p in found]), timeout=120, check=False, cwd="/")
    finally:
        kill_uid(uid)
    if run.returncode != 0:
        return f"the check that a stranger cannot read them failed: {run.stderr.strip()[-300:]}"
    readable = json.loads(run.stdout)
    if readable:
        shown = ", ".join(readable[:5]) + (f" and {len(readable) - 5} more" if len(readable) > 5 else "")
        return (f"an unprivileged user can read {shown}. Make them root's alone (chmod -R go= on their folders; "
                "the platform adapters do this)")
    return None


def apply_limits(limits):
    """
    Isolation "none" only (asked for by name): the rlimits without the jail, for
    subprocess's preexec_fn. RLIMIT_NPROC is left out: without a uid of its own it
    would count every process of the grader's user.
    """
    memory = limits.memory_mb * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds(), limits.cpu_seconds() + 5))  # SIGXCPU, then KILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * 2 ** 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def python_paths():
    """The running Python's folders (the interpreter, the standard library, the environment's packages)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return sorted({os.path.realpath(p) for p in prefixes} - {"/usr"})


def new_uid():
    """A fresh uid for one jail (no passwd entry needed)."""
    return secrets.choice(UIDS)


def give_to(path, uid):
    """Make a folder (and all in it) the jail's, so its uid can write there. Only root needs this."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid, uid)


def remove_folder(folder):
    """Remove a folder a jail wrote in, whatever the jailed code did to its modes (folders it made unreadable)."""
    if os.geteuid() != 0:   # root reads and deletes anything; another user must make the folders its own again
        for root, dirs, _ in os.walk(folder):
            for name in dirs:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    try:
                        os.chmod(path, 0o700)
                    except OSError:
                        pass
    shutil.rmtree(folder, ignore_errors=True)


def seccomp_fd():
    """A new file descriptor (inheritable, at offset 0) holding the compiled seccomp filter. Close it after use."""
    fd = os.memfd_create("jail-seccomp", 0)
    os.write(fd, seccomp_filter())
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


@functools.cache
def seccomp_filter():
    """
    The seccomp program (classic BPF, as bwrap's --seccomp reads it), compiled by libseccomp.

    Allows everything but DENIED_SYSCALLS (EPERM), clone with any namespace flag
    (EPERM), clone3 (ENOSYS, so libc falls back to clone, whose flags can be
    checked) and ioctl TIOCSTI/TIOCLINUX (EPERM).
    """
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise JailUnavailable(f"libseccomp is not installed ({name}). {INSTALL_HINT}") from None

    class ArgCmp(ctypes.Structure):   # struct scmp_arg_cmp
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]

    lib.seccomp_init.restype, lib.seccomp_init.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, masked_eq = 0x7FFF0000, 7                     # SCMP_ACT_ALLOW, SCMP_CMP_MASKED_EQ
    fail = lambda code: 0x00050000 | code                # noqa: E731 (SCMP_ACT_ERRNO(code))
    context = lib.seccomp_init(allow)

    def deny(syscall, code=errno.EPERM, arg=None, mask=0, value=0):
        number = lib.seccomp_syscall_resolve_name(syscall.encode())
        if number < 0:   # not a syscall on this architecture
            return
        compare = ArgCmp(arg, masked_eq, mask, value) if arg is not None else None
        if lib.seccomp_rule_add_array(context, fail(code), number, int(compare is not None),
                                      ctypes.byref(compare) if compare else None) != 0:
            raise JailUnavailable(f"libseccomp refused the rule for {syscall}")

    try:
        for syscall in DENIED_SYSCALLS:
            deny(syscall)
        deny("clone3", errno.ENOSYS)
        for flag in CLONE_NAMESPACE_FLAGS:
            deny("clone", arg=0, mask=flag, value=flag)
        for request in TTY_INJECTION:
            deny("ioctl", arg=1, mask=0xFFFFFFFF, value=request)
        with tempfile.TemporaryFile() as f:
            if lib.seccomp_export_bpf(context, f.fileno()) != 0:
                raise JailUnavailable("libseccomp could not export the filter")
            f.seek(0)
            return f.read()
    finally:
        lib.seccomp_release(context)


def run_jailed(argv, *, limits, chdir, read_only=(), writable=(), env=None, uid=None, **popen):
    """
    Run argv in the jail and wait (subprocess.run's return value). For short commands:
    the probe, the check worker. `popen` goes to subprocess.run (capture_output, input...).
    """
    fd = seccomp_fd()
    try:
        command = jail_command(argv, limits=limits, chdir=chdir, read_only=read_only, writable=writable, env=env,
                               uid=uid, seccomp_fd=fd)
        return subprocess.run(command, pass_fds=(fd, *popen.pop("pass_fds", ())), stdin=subprocess.DEVNULL,
                              timeout=limits.timeout_s + 10, **popen)
    finally:
        os.close(fd)


def require(isolation):
    """
    Check that the isolation asked for works here; return it. For "jail", run a
    tiny jailed Python once per process and raise JailUnavailable if it fails.
    "none" is returned as it is: it is only ever used when asked for by name.
    """
    if isolation not in ISOLATIONS:
        raise JailUnavailable(f"Unknown isolation {isolation!r}; choose {', '.join(map(repr, ISOLATIONS[:-1]))} "
                              f"or {ISOLATIONS[-1]!r}")
    if isolation == "jail":
        problem = _probe()
        if problem:
            raise JailUnavailable(f"The jail for student code cannot start: {problem}. {INSTALL_HINT}")
    if isolation == "user":
        problem = _user_probe()
        if problem:
            raise JailUnavailable(f"Isolation 'user' cannot start: {problem}")
    return isolation


PROBE = ("import os, socket\n"
         "s = socket.socket()\n"
         "try:\n    s.connect(('127.0.0.1', 9)); net = 'reached'\n"
         "except OSError:\n    net = 'none'\n"
         "print(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]), net)\n")


@functools.cache
def _probe():
    """None if a jailed Python starts, runs as another uid and sees no network; else what went wrong."""
    if not sys.platform.startswith("linux"):
        return f"it needs Linux (this is {sys.platform})"
    missing = [tool for tool in ("bwrap", "timeout", "prlimit") + (("setpriv",) if os.geteuid() == 0 else ())
               if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not found"
    try:
        run = run_jailed([sys.executable, "-I", "-c", PROBE], limits=Limits(timeout_s=30, memory_mb=1024),
                         chdir="/tmp", capture_output=True, text=True)
    except (JailUnavailable, OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if run.returncode != 0:
        return f"bwrap failed: {(run.stderr.strip().splitlines() or ['exit code %d' % run.returncode])[-1]}"
    uid, processes, net = run.stdout.split()
    if os.geteuid() == 0 and uid == "0":
        return "the jailed process still ran as root"
    if net != "none":
        return "the jailed process reached the network"
    return None


@functools.cache
def _user_probe():
    """None if a Python started as a fresh uid runs as that uid; else what went wrong."""
    if os.geteuid() != 0:
        return ("it needs the grader to run as root, as it does in Gradescope's and PrairieLearn's containers, "
                "so that the student's code can run as another user")
    missing = [tool for tool in ("timeout", "prlimit", "setpriv") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not found (Debian package util-linux, coreutils)"
    uid = new_uid()
    command = limited_command([sys.executable, "-I", "-c", "import os; print(os.getuid())"],
                              limits=Limits(timeout_s=30, memory_mb=1024), uid=uid)
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if run.returncode != 0 or run.stdout.strip() != str(uid):
        return f"a process could not become uid {uid}: {(run.stderr.strip() or run.stdout.strip())[-300:]}"
    return None


def _is_system(path):
    """A folder the jail already has (/, /usr, its own /tmp and /dev), which must not be made again."""
    return str(path) in ("/", "/tmp", "/dev", "/dev/shm") or Path(path).is_relative_to("/usr")
