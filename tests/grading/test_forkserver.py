"""
One jail per batch (grader/forkserver.py, grader/zygote.py): its zygote imports torch once and
forks a child per submission. Hostile submissions try, for real, to reach the next submission
graded in the same jail: a process left running, files in every writable place, System V shared
memory, the zygote's memory and descriptors, killing or stopping the zygote. Each reports what it
managed by raising at import, which its result shows; the next submission, an observer, reports
what it finds; an honest model graded after them must score as it does alone. What a child leaves
in the folder the grader empties (a file, a link, a folder of mode 0, the folder made read-only)
must not stop the next one.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from exercise_code.networks import KeypointModel
from exercise_code.util.model_files import save_model
from exercise_code.util.submission import MODEL_ENTRY
from grader import forkserver
from grader.api import grade
from grader.release import STUDENT_PACKAGE
from grading_scenarios import SMALL

PLANTED_FILES = ("/tmp/planted", "/dev/shm/planted", "planted")   # the last in its working folder
SHM_KEY = 0x5EED
ZYGOTE_START = ("def _started(pid):\n"
                "    with open(f'/proc/{pid}/stat') as f:\n"
                "        return f.read().rsplit(')', 1)[1].split()[19]\n")

ATTACKER = ZYGOTE_START + f"""
import ctypes, json, os, subprocess, sys
zygote = os.getppid()
subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)", "planted-process"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for path in {PLANTED_FILES!r}:
    with open(path, "w") as f:
        f.write("left for the next student")
slot = os.path.dirname(os.path.dirname(os.getcwd()))   # the folder the grader empties before the next one
with open(os.path.join(slot, "planted-file"), "w") as f:
    f.write("for the grader to trip on")
os.symlink("/etc", os.path.join(slot, "planted-link"))
os.mkdir(os.path.join(slot, "planted-folder"))
os.chmod(os.path.join(slot, "planted-folder"), 0)
os.chmod(slot, 0o500)
shm = ctypes.CDLL(None, use_errno=True).shmget({SHM_KEY}, 4096, 0o1666)   # IPC_CREAT
tried = {{}}
for name, attempt in [("mem", lambda: open(f"/proc/{{zygote}}/mem", "r+b").close()),
                      ("environ", lambda: open(f"/proc/{{zygote}}/environ", "rb").close()),
                      ("fds", lambda: os.listdir(f"/proc/{{zygote}}/fd"))]:
    try:
        attempt()
        tried[name] = "done"
    except OSError as error:
        tried[name] = type(error).__name__
sockets = []
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{{fd}}").startswith("socket:"):
            sockets.append(fd)
    except OSError:
        pass
raise RuntimeError("REPORT " + json.dumps({{"zygote": _started(zygote), "shm": shm, "tried": tried,
                                            "sockets": sockets}}))
"""

OBSERVER = ZYGOTE_START + f"""
import json, os
mine = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
found = {{"files": [path for path in {PLANTED_FILES!r} if os.path.exists(path)], "processes": [], "code": []}}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as f:
            if b"planted-process" in f.read():
                found["processes"].append(pid)
    except OSError:
        pass
with open("/proc/sysvipc/shm") as f:
    found["shm"] = [line.split()[1] for line in f.readlines()[1:] if int(line.split()[0]) == {SHM_KEY}]
for top in ("/tmp", "/dev/shm", os.path.dirname(os.path.dirname(mine))):
    for folder, _, files in os.walk(top):
        if "keypoint_nn.py" in files and not folder.startswith(mine):
            found["code"].append(folder)
raise RuntimeError("REPORT " + json.dumps({{"zygote": _started(os.getppid()), **found}}))
"""


def submission(root, name, code=""):
    """A submission folder: the student package with a random SMALL model, `code` run at the import of its model."""
    folder = root / name
    shutil.copytree(STUDENT_PACKAGE, folder / "exercise_code", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "models").mkdir()
    save_model(KeypointModel(SMALL).eval(), folder / MODEL_ENTRY)
    if code:
        model = folder / "exercise_code" / "networks" / "keypoint_nn.py"
        model.write_text(model.read_text() + "\n\n" + code)
    return folder


def graded(root, folders, **settings):
    """{name: result} of one batch: grade() in this process, one submission after the other (jobs=1)."""
    results = grade(submissions={folder.name: folder for folder in folders}, test_data=settings.pop("test_data"),
                    out_dir=root / "out", force=True, **settings)
    return {folder.name: result for folder, result in zip(sorted(folders, key=lambda f: f.name), results)}


def report(result):
    """What a hostile submission raised at import: the JSON after REPORT in its result."""
    found = re.search(r"REPORT (\{.*?\})\s*$", result["output"], re.M)
    assert found, result["output"]
    return json.loads(found.group(1))


@pytest.fixture
def honest_alone(tmp_path, hidden_subset, jail):
    """The honest submission, and its score graded alone."""
    honest = submission(tmp_path / "alone", "c_honest")
    return honest, graded(tmp_path / "alone", [honest], test_data=hidden_subset)["c_honest"]["score"]


def test_nothing_a_submission_leaves_reaches_the_next_in_the_same_jail(tmp_path, hidden_subset, honest_alone):
    """A process left running, files in /tmp, /dev/shm and its folder, shared memory: are they all gone for the
    next submission of the batch, forked by the same zygote? Can it touch the zygote? Does an honest model after
    them score as alone?"""
    honest, alone = honest_alone
    folders = [submission(tmp_path, "a_attacker", ATTACKER), submission(tmp_path, "b_observer", OBSERVER),
               shutil.copytree(honest, tmp_path / "c_honest")]
    results = graded(tmp_path, folders, test_data=hidden_subset)
    attacker, observer = report(results["a_attacker"]), report(results["b_observer"])
    assert attacker["zygote"] == observer["zygote"]   # the same zygote forked both
    assert attacker["shm"] >= 0                       # it did plant all it could
    assert attacker["tried"] == {"mem": "PermissionError", "environ": "PermissionError", "fds": "PermissionError"}
    assert attacker["sockets"] == []                  # not the zygote's control socket
    assert observer == {"zygote": attacker["zygote"], "files": [], "processes": [], "code": [], "shm": []}
    assert results["c_honest"]["score"] == alone


@pytest.mark.parametrize("how", ["kills", "stops"])
def test_a_submission_that_kills_or_stops_the_zygote_costs_only_its_own_grade(tmp_path, hidden_subset,
                                                                             honest_alone, how):
    """A model that kills the zygote (or stops it, and then predicts): is it alone to fail, the next submission
    graded in a new jail, as alone?"""
    honest, alone = honest_alone
    signal = "SIGKILL" if how == "kills" else "SIGSTOP"
    folders = [submission(tmp_path, "a_attacker", f"import os, signal\nos.kill(os.getppid(), signal.{signal})\n"),
               shutil.copytree(honest, tmp_path / "c_honest")]
    results = graded(tmp_path, folders, test_data=hidden_subset, timeout_s=8)
    assert results["a_attacker"]["score"] == 0
    assert results["c_honest"]["score"] == alone


def test_a_batch_leaves_no_jail_and_no_folder(tmp_path, hidden_subset, jail):
    """After grade(), is every zygote of its batch gone, with its folder?"""
    folders = [submission(tmp_path, f"s{n}") for n in range(2)]
    graded(tmp_path, folders, test_data=hidden_subset, scratch_dir=tmp_path / "scratch")
    assert not forkserver._servers
    assert list((tmp_path / "scratch").iterdir()) == []
    zygotes = subprocess.run(["pgrep", "-f", "zygote.py"], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in zygotes if str(tmp_path) in open(f"/proc/{pid}/cmdline").read()]


def test_a_zygote_that_cannot_start_is_an_error_that_says_why(tmp_path, hidden_subset, jail, monkeypatch):
    """A zygote that dies before it is ready (here: Python cannot even start it): a ForkServerError with its output."""
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(forkserver.ForkServerError, match="did not start.*nonexistent"):
        forkserver.ForkServer("b", hidden_subset, forkserver.jail.Limits(timeout_s=10, memory_mb=1024), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_zygote_never_counts_itself_or_its_ancestors_among_what_it_kills():
    """The zygote's list of processes to spare (it runs in the jail; here, on the host): us and our parents."""
    from grader import zygote

    spared = zygote._ancestors()
    assert os.getppid() in spared and 1 in spared and os.getpid() not in spared
    assert "/proc" in zygote._mount_points()
