"""
Replay: how a class is autograded in parallel while one process writes the gradebook.

    python -m grader autograde (grader/class_autograde.py)
      1. workers, in parallel: nbgrader's autograde of their students, Replay.record on,
         each with a gradebook of its own that is thrown away. The expensive step
         saves what it computed, under a key of everything it depends on:
           JailedExecute   the executed notebook       key: the notebook, its folder, the kernel's settings
         (the trusted grades were computed before, with the models: TrustedGrades
         leaves them to step 2 in record mode)
      2. one process, the only one that writes course/gradebook.db: nbgrader's
         autograde of every student again. The same step finds its key saved and
         loads it instead of computing it again: the same input gives the same output.

A step that finds nothing saved (its worker failed, or an input differs) computes
as plain `nbgrader autograde` does, so a lost worker costs time, never a grade.
The folder is the run's own scratch folder (mode 0700): no kernel ever sees it.
"""
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from traitlets import Bool, Unicode
from traitlets.config import Configurable

SEEN = Counter()   # ("loaded" | "computed", step) -> count, in this process (class_autograde reports it;
                   # TrustedGrades counts its "checks" here too, found in the models' results or computed)


class Replay(Configurable):
    """Where the steps of a class autograde save what they computed (record) or load it (replay)."""

    folder = Unicode("", help="The run's replay folder; empty: every step computes, as plain nbgrader "
                              "autograde does (python -m grader autograde sets it)").tag(config=True)
    record = Bool(False, help="Save what the steps compute (the parallel workers); otherwise load "
                              "it when saved (the process that writes the gradebook)").tag(config=True)

    def load(self, step, key):
        """What the step saved under key, or None (and the step computes)."""
        if not self.folder or self.record:
            return None
        path = self._path(step, key)
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            SEEN["computed", step] += 1
            return None
        SEEN["loaded", step] += 1
        return value

    def save(self, step, key, value):
        """Save a JSON value under key, when recording (written whole, via a rename)."""
        if not self.folder or not self.record:
            return
        path = self._path(step, key)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(value))
        partial.replace(path)

    def _path(self, step, key):
        return Path(self.folder) / f"{step}-{key}.json"


def replay_key(*parts):
    """A SHA-256 of JSON-able parts: the key a step saves its result under."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def folder_digest(folder, skip_suffix=".ipynb"):
    """
    A SHA-256 of a folder's files (paths and contents), but the notebooks: those in
    an autograded folder are this very run's output, written after each kernel ran.
    """
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix != skip_suffix:
            with path.open("rb") as f:
                digest.update(f"{path.relative_to(folder)}\0{hashlib.file_digest(f, 'sha256').hexdigest()}\n".encode())
    return digest.hexdigest()
