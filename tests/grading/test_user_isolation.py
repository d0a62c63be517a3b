"""
Isolation "user": the model grader inside a platform's container, where Docker's
seccomp profile stops the jail. The grader runs as root and the student's code as
a fresh uid; files are what keep the secrets. These tests attack it for real: the
grader runs from a private copy of the pack (as on a platform, where the adapter
makes its folder root's alone), without bubblewrap on its PATH (so the jail
cannot start), and grades a spy whose code tries to read the hidden labels, the
grader's files (with the solutions) and the results, to leave a process running
after it, and to reach root's processes.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

import exercise_code
import grader
from grading_scenarios import patch_forward, valid_workspace, zip_folder

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="isolation 'user' needs root")]

# What the spy does at import, wherever its code runs; it reports one JSON line on stderr.
SPY = r'''
import json, os, subprocess, sys, time

def _spy(targets, marker):
    report = {"uid": os.getuid(), "read": [], "listed": [], "wrote": [], "environ": []}
    for path in targets:
        try:
            if os.path.isdir(path):
                report["listed"].append([path, os.listdir(path)[:5]])
                open(os.path.join(path, "spy-was-here"), "w").write("x")
                report["wrote"].append(path)
            else:
                report["read"].append([path, open(path, "rb").read(40).decode(errors="replace")])
        except OSError:
            pass
    for pid in filter(str.isdigit, os.listdir("/proc")):   # the grader's environment, and any other user's
        try:
            if os.stat(f"/proc/{pid}").st_uid != os.getuid():
                report["environ"].append(open(f"/proc/{pid}/environ", "rb").read(80).decode(errors="replace"))
        except OSError:
            pass
    # a classmate graded at the same time: its worker's command line names its submission; read its code
    report["classmates"], report["copied"] = [], []
    deadline = time.time() + 20
    while not report["classmates"] and time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                spec = json.loads(argv[-2]) if len(argv) > 2 and argv[-2].startswith(b"{") else {}
            except (OSError, ValueError):
                continue
            theirs = spec.get("submission")
            mine = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            if theirs and os.path.abspath(theirs) != mine and theirs not in report["classmates"]:
                report["classmates"].append(theirs)
                try:
                    report["copied"].append(open(os.path.join(theirs, "exercise_code", "networks",
                                                              "keypoint_nn.py")).read(40))
                except OSError:
                    pass
        time.sleep(0.1)
    # a process in a session of its own, that outlives the worker unless someone kills it
    subprocess.Popen(["/bin/sh", "-c", f"sleep 4; echo alive > {marker}"],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    print("spy: " + json.dumps(report), file=sys.stderr)
'''


@pytest.fixture(scope="module")
def private_pack(tmp_path_factory):
    """The grader and the solved exercise_code, copied where only root can read them (as on a platform)."""
    pack = tmp_path_factory.mktemp("pack")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(grader.__file__).parent, pack / "grader", ignore=ignore)
    shutil.copytree(Path(exercise_code.__file__).parent, pack / "exercise_code", ignore=ignore)
    os.chmod(pack, 0o700)
    return pack


@pytest.fixture(scope="module")
def no_jail_path(tmp_path_factory):
    """A PATH with the tools isolation "user" needs, and no bubblewrap: the jail cannot start."""
    tools = tmp_path_factory.mktemp("bin")
    for tool in ("timeout", "prlimit", "setpriv"):
        (tools / tool).symlink_to(shutil.which(tool))
    return str(tools)


def run_grader(pack, path, *args):
    """`python -m grader ARGS...` from the private pack, with PATH = path; the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(pack), "PATH": path}
    return subprocess.run([sys.executable, "-P", "-m", "grader", *map(str, args)], env=env, cwd="/",
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def spied(private_pack, no_jail_path, valid_model, hidden_subset, tmp_path_factory):
    """Grade a spy and an honest submission with isolation "user"; the results and what the spy saw."""
    root = tmp_path_factory.mktemp("user")
    secret = root / "secret"
    secret.mkdir()
    test_csv = secret / "test.csv"
    shutil.copyfile(hidden_subset, test_csv)
    out = secret / "out"
    marker = Path("/tmp") / f"spy-alive-{os.getpid()}"   # a place any uid may write
    marker.unlink(missing_ok=True)
    targets = [str(test_csv), str(secret), str(out), str(private_pack / "exercise_code" / "layers.py"),
               str(private_pack / "grader"), "/root"]
    submissions = root / "submissions"
    submissions.mkdir()
    honest = valid_workspace(root / "honest", valid_model)
    patch_forward(honest, "import time\ntime.sleep(8)   # still running while the spy looks for it\nreturn out")
    zip_folder(honest, submissions / "honest.zip")
    spy = valid_workspace(root / "spy", valid_model)
    (spy / "exercise_code" / "networks" / "spy.py").write_text(SPY)
    patch_forward(spy, f"if not getattr(self, '_spied', False):\n    self._spied = True\n"
                       f"    from .spy import _spy\n    _spy({targets!r}, {str(marker)!r})\nreturn out")
    zip_folder(spy, submissions / "spy.zip")
    run = run_grader(private_pack, no_jail_path, "grade", submissions, "--test-data", test_csv, "--out", out,
                     "--isolation", "user", "--timeout", 60, "--jobs", 2)
    assert run.returncode == 0, run.stderr
    time.sleep(5)   # the spy's background process would have written by now
    results = {name: json.loads((out / f"{name}.json").read_text()) for name in ("honest", "spy")}
    output = "\n".join(test["output"] for test in results["spy"]["tests"])
    line = next(line for line in output.splitlines() if line.startswith("spy: "))
    return dict(results=results, report=json.loads(line.removeprefix("spy: ")), marker=marker, out=out,
                secret=secret, grader_output=run.stdout + run.stderr)


def test_the_jail_cannot_start_there(private_pack, no_jail_path, hidden_subset, tmp_path):
    """Without bubblewrap, is the default refused (never a silent fall back to "user")?"""
    run = run_grader(private_pack, no_jail_path, "grade", tmp_path, "--test-data", hidden_subset,
                     "--out", tmp_path / "out")
    assert run.returncode == 2 and "bwrap not found" in run.stderr, run.stderr


def test_student_code_runs_as_another_user_and_scores(spied):
    """Does the spy's code run as an unprivileged uid, with the honest score, recorded as "user"?"""
    spy, honest = spied["results"]["spy"], spied["results"]["honest"]
    assert spied["report"]["uid"] >= 200_000
    assert spy["extra_data"]["isolation"] == honest["extra_data"]["isolation"] == "user"
    assert honest["extra_data"]["raw_score"] > 100
    assert spy["extra_data"]["raw_score"] == honest["extra_data"]["raw_score"]


def test_the_spy_reads_nothing_secret(spied):
    """Can the spy read the labels, the grader's files or the results, or write beside them? It must not."""
    report = spied["report"]
    assert report["read"] == [] and report["listed"] == [] and report["wrote"] == [], report
    assert not list(spied["secret"].rglob("spy-was-here"))
    assert report["environ"] == [], "it read another process's environment"


def test_the_spy_cannot_copy_a_classmate_graded_beside_it(spied):
    """Two students graded at once: the spy finds the classmate's submission in its worker's command line,
    and must not be able to read it (each submission is its own uid's alone)."""
    report = spied["report"]
    assert report["classmates"], "the classmate's worker was not seen: the attack was not tried"
    assert report["copied"] == []


def test_nothing_of_the_spy_outlives_it(spied):
    """Is the process the spy left in a session of its own killed with the worker?"""
    assert not spied["marker"].exists()


def test_readable_secrets_are_refused(private_pack, no_jail_path, hidden_subset, tmp_path):
    """A hidden CSV and results anyone can read: does the grader refuse to start, saying how to fix it?"""
    open_dir = Path(tempfile.mkdtemp(prefix="readable-"))   # in /tmp, which anyone may list
    try:
        open_dir.chmod(0o755)
        test_csv = open_dir / "test.csv"
        shutil.copyfile(hidden_subset, test_csv)
        test_csv.chmod(0o644)
        with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
            pass
        run = run_grader(private_pack, no_jail_path, "grade", tmp_path / "empty.zip", "--test-data", test_csv,
                         "--out", open_dir / "out", "--isolation", "user")
    finally:
        shutil.rmtree(open_dir)
    assert run.returncode == 2, run.stderr
    assert "an unprivileged user can read" in run.stderr and "chmod -R go=" in run.stderr
    assert str(test_csv) in run.stderr and str(open_dir / "out") in run.stderr
