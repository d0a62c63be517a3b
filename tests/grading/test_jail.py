"""
The one jail (grader/jail.py), tried from inside: each test runs hostile code in
it and checks what it could reach. The model worker, the check worker and the
notebook kernels all run in this jail.
"""
import json
import os
import socket
import sys
import time

import pytest

from grader import jail

LIMITS = jail.Limits(timeout_s=30, memory_mb=1024, processes=64)
SEE = '''
import json, os, socket, sys
def status(key):
    return next(l.split()[1] for l in open("/proc/self/status") if l.startswith(key + ":"))
report = {"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
          "env": dict(os.environ), "cap_eff": status("CapEff"), "no_new_privs": status("NoNewPrivs"),
          "seccomp": status("Seccomp"), "root": sorted(os.listdir("/"))}
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
report["unshare"] = "allowed" if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())  # CLONE_NEWUSER
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2); report["net"] = "reached"
except OSError as error:
    report["net"] = type(error).__name__
for name, path in [("shown", sys.argv[2]), ("sibling", sys.argv[3])]:
    try:
        report[name] = open(path).read()
    except OSError as error:
        report[name] = type(error).__name__
try:
    open(sys.argv[2], "a").write("changed")
    report["write_shown"] = "written"
except OSError as error:
    report["write_shown"] = type(error).__name__
open(os.path.join(sys.argv[4], "out.txt"), "w").write("mine")
print(json.dumps(report))
'''


def run(code, *args, tmp_path, limits=LIMITS, **kwargs):
    return jail.run_jailed([sys.executable, "-I", "-c", code, *map(str, args)], limits=limits, chdir="/tmp",
                           capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def seen(tmp_path_factory, isolation):
    """What a jailed Python reports about itself, with a secret in our environment and a listener on loopback."""
    tmp = tmp_path_factory.mktemp("jail")   # below /tmp, like a clone or a venv there: must still be shown
    (tmp / "shown").mkdir()
    (tmp / "shown" / "data.txt").write_text("the data")
    (tmp / "secret.txt").write_text("the labels")
    work = tmp / "work"
    work.mkdir()
    uid = jail.new_uid()
    jail.give_to(work, uid)
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    os.environ["JAIL_TEST_SECRET"] = "hidden-path"
    try:
        result = run(SEE, server.getsockname()[1], tmp / "shown" / "data.txt", tmp / "secret.txt", work,
                     tmp_path=tmp, read_only=[tmp / "shown"], writable=[work], uid=uid)
    finally:
        del os.environ["JAIL_TEST_SECRET"]
    try:
        server.accept()
        connections = 1
    except BlockingIOError:
        connections = 0
    server.close()
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout), "connections": connections, "tmp": tmp, "uid": uid}


def test_runs_as_a_fresh_uid_without_privileges(seen):
    """Is the code a fresh unprivileged uid, with no capabilities, no_new_privs and seccomp filtering?"""
    if os.geteuid() == 0:
        assert seen["uid"] in jail.UIDS
    assert seen["cap_eff"] == "0000000000000000" and seen["no_new_privs"] == "1" and seen["seccomp"] == "2"
    assert seen["unshare"] == "Operation not permitted"   # seccomp: no new namespaces, no way back to root's powers


def test_sees_no_other_process_and_no_secret(seen):
    """Is /proc the jail's own (no instructor process to read), and the environment only the allow-list?"""
    assert max(seen["pids"]) < 10
    assert "JAIL_TEST_SECRET" not in seen["env"] and set(seen["env"]) <= {*jail.BASE_ENV, "PWD", "OMP_NUM_THREADS",
                                                                          "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


def test_has_no_network(seen):
    """Is the host's loopback out of reach (a new network namespace), with nothing arriving at our listener?"""
    assert seen["net"] in ("ConnectionRefusedError", "OSError") and seen["connections"] == 0


def test_sees_only_what_it_is_shown(seen):
    """Read-only means read-only, a sibling of a shown folder is absent, and writes land in its own folder."""
    assert seen["shown"] == "the data" and seen["write_shown"] in ("OSError", "PermissionError")
    assert seen["sibling"] == "FileNotFoundError"
    assert (seen["tmp"] / "shown" / "data.txt").read_text() == "the data"
    assert (seen["tmp"] / "work" / "out.txt").read_text() == "mine"
    python = {path.strip("/").split("/")[0] for path in jail.python_paths()}   # e.g. usr, root (pyenv), work (venv)
    system = {"usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "etc", "proc", "dev", "tmp"}
    assert set(seen["root"]) <= system | python, seen["root"]   # no home, no /srv, no /var, no course


def test_wall_clock_kills_everything(isolation):
    """Is a process that sleeps forever, and the child it forked, killed at the wall-clock limit?"""
    start = time.perf_counter()
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(1000)\ntime.sleep(1000)\n"
    result = run(code, tmp_path=None, limits=jail.Limits(timeout_s=3, memory_mb=512))
    assert time.perf_counter() - start < 15 and result.returncode != 0


def test_fork_and_memory_are_bounded(isolation):
    """Does a fork loop stop at the process limit, and an allocation loop at the memory limit?"""
    code = ("import os, time\nchildren = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
            "            time.sleep(5); os._exit(0)\n        children += 1\nexcept OSError:\n    pass\n"
            "hoard = []\ntry:\n    while True:\n        hoard.append(bytearray(2 ** 24))\nexcept MemoryError:\n"
            "    pass\nprint(children, len(hoard) * 16)\n")
    result = run(code, tmp_path=None, limits=jail.Limits(timeout_s=30, memory_mb=512, processes=32))
    children, megabytes = map(int, result.stdout.split())
    assert children < 32 and megabytes < 512


def test_unavailable_jail_is_refused(monkeypatch):
    """Where bubblewrap is missing, does require() refuse, saying what to install, and allow 'none' only by name?"""
    monkeypatch.setattr(jail, "_probe", lambda: "bwrap not found")
    with pytest.raises(jail.JailUnavailable, match="apt-get install bubblewrap"):
        jail.require("jail")
    assert jail.require("none") == "none"
    with pytest.raises(jail.JailUnavailable, match="Unknown isolation"):
        jail.require("docker")


def test_probe_fails_without_bwrap(monkeypatch, tmp_path):
    """Does the real probe say what is missing when bwrap is not on the PATH?"""
    monkeypatch.setenv("PATH", str(tmp_path))
    jail._probe.cache_clear()
    try:
        assert "bwrap" in jail._probe()
    finally:
        jail._probe.cache_clear()
