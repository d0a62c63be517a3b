"""
Results: one JSON file per submission in the shape of Gradescope's results.json,
and the gradebook made from all of them (grades.csv, leaderboard.md).

    {"score": 100.0,                       # points, after the PointsRule
     "execution_time": 5,                  # whole seconds for this submission, rounded up
     "output": "Score 1/(2*MSE) = 131.2 ...",
     "tests": [{"name", "status": "passed" | "failed", "score", "max_score", "output"}, ...],
     "leaderboard": [{"name": "1/(2*MSE)", "value": 131.2, "order": "desc"}],   # at most LEADERBOARD_MAX
     "extra_data": {"grader": "i2dl-keypoints", "submission": "alice", "raw_score": 131.2,
                    "execution_time_s": 4.213, ...}}

See https://gradescope-autograders.readthedocs.io/en/latest/specs/ for the shape;
grader/platforms/gradescope_results.schema.json holds it, with our stricter rules
(no null outside extra_data, an integer execution_time), and the tests check every
result written against it. Older files (a float execution_time) still read.
The gradebook is always rebuilt from every result file in the folder, so results
from several machines merge by copying them into one folder (merge_results).
"""
import csv
import io
import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .trusted import atomic_file

GRADER_NAME = "i2dl-keypoints"   # marks our result files among other JSON files
LEADERBOARD_NAME = "1/(2*MSE)"
# The largest leaderboard value. A perfect prediction (MSE 0) scores infinity, which JSON cannot hold and
# a leaderboard cannot show sanely (the largest float is 1.8e308); it and anything above it are shown as
# this. 1e6 is an RMS error of 0.034 px per coordinate (MSE 5e-7 in unit coordinates, 1 px = 1/48):
# far below what the labels are precise to, so only a copy of the labels scores that high, and ties there.
LEADERBOARD_MAX = 1e6
TABLES = ("grades.csv", "leaderboard.md")
PREDICTIONS = "predictions"   # each scored submission's predictions, beside its result (api.save_predictions)
CSV_COLUMNS = ["submission", "points", "max_points", "raw_score", "status", "message", "execution_time_s",
               "isolation", "graded_at", "source"]


class MergeError(ValueError):
    """Result folders that cannot be merged; the message says which files conflict."""


@dataclass(frozen=True)
class Row:
    """One check of a result, as Gradescope shows it (an entry of "tests")."""
    name: str                # the check's title (messages.TITLES)
    status: str              # "passed" or "failed"
    score: float
    max_score: float
    output: str              # what the student reads


@dataclass
class Result:
    """
    One submission's result.

    - submission: The submission's name (its file name without .zip)
    - score: Points, after the PointsRule
    - max_points: Points for a full score
    - raw_score: 1/(2*MSE), or None when the submission could not be scored. A perfect
      prediction (MSE 0, an infinite score) is kept as the largest float: JSON has no Infinity
      (the leaderboard shows at most LEADERBOARD_MAX)
    - output: The summary the student reads first
    - tests: List of Row, one per check
    - execution_time: Seconds, as measured (results.json has them rounded up to whole seconds)
    - extra: For instructors (source, isolation, timings, key, graded_at, grader_error...), under extra_data
    """
    submission: str
    score: float
    max_points: float
    raw_score: float | None
    output: str
    tests: list
    execution_time: float
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.raw_score is not None and not math.isfinite(self.raw_score):
            self.raw_score = sys.float_info.max

    def to_json(self):
        """
        The result as Gradescope's results.json: a dict json.dumps writes without NaN or Infinity,
        with no null outside extra_data (Gradescope fails on a null) and execution_time in whole
        seconds, rounded up (the spec's examples are integers; rounding up never reports a grading
        as quicker than it was). The precise seconds are in extra_data.execution_time_s.
        """
        return {
            "score": self.score,
            "execution_time": math.ceil(round(self.execution_time, 3)),   # as execution_time_s, rounded up
            "output": self.output or "",
            "tests": [{**asdict(row), "output": row.output or ""} for row in self.tests],
            "leaderboard": [{"name": LEADERBOARD_NAME,
                             "value": min(self.raw_score, LEADERBOARD_MAX) if self.scored else 0.0,
                             "order": "desc"}],
            "extra_data": {"grader": GRADER_NAME, "submission": self.submission, "raw_score": self.raw_score,
                           "max_points": self.max_points, "execution_time_s": round(self.execution_time, 3),
                           **self.extra},
        }

    @classmethod
    def from_json(cls, data):
        """The Result of a dict written by to_json (ValueError if it is not one of ours)."""
        try:
            extra = dict(data["extra_data"])
            if extra.pop("grader") != GRADER_NAME:
                raise ValueError("not a result of this grader")
            # The precise seconds are in extra_data; files written before it have them in execution_time.
            seconds = extra.pop("execution_time_s", data["execution_time"])
            return cls(submission=extra.pop("submission"), score=data["score"], max_points=extra.pop("max_points"),
                       raw_score=extra.pop("raw_score"), output=data["output"],
                       tests=[Row(**row) for row in data["tests"]], execution_time=seconds, extra=extra)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a result: {error!r}") from None

    @property
    def scored(self):
        return self.raw_score is not None

    def failed_check(self):
        """The Row of the first failed check, or None when all passed."""
        return next((row for row in self.tests if row.status == "failed"), None)

    def csv_row(self):
        """The result's row of grades.csv (a dict keyed by CSV_COLUMNS)."""
        failed = None if self.scored else self.failed_check()   # a low score is no failure
        return {
            "submission": self.submission, "points": self.score, "max_points": self.max_points,
            "raw_score": "" if failed else f"{self.raw_score:.4f}",
            "status": f"failed: {failed.name}" if failed else "scored",
            "message": failed.output.strip().splitlines()[0][:300] if failed else "",
            "execution_time_s": self.execution_time, "isolation": self.extra.get("isolation"),
            "graded_at": self.extra.get("graded_at"), "source": self.extra.get("source"),
        }


def failed_check(result):
    """The first failed test of a result dict (Result.to_json()), or None when all passed."""
    return next((test for test in result["tests"] if test["status"] == "failed"), None)


def write_json_atomic(path, data):
    """Write a Result (or a dict) as JSON via a temporary file and a rename: readers see the old file or the new."""
    data = data.to_json() if isinstance(data, Result) else data
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_text_atomic(path, text):
    """Write text to path via a temporary file and a rename: a crash never leaves half a file."""
    with atomic_file(path, "w", newline="") as f:
        f.write(text)


def read_result(path):
    """The Result in path, or None if it is not one of ours (or is unreadable)."""
    try:
        return Result.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError):
        return None


def read_results(folder):
    """Every Result in folder, sorted by submission name."""
    results = (read_result(path) for path in sorted(Path(folder).glob("*.json")))
    return sorted((r for r in results if r), key=lambda r: r.submission)


def write_gradebook(folder):
    """
    Rebuild grades.csv and leaderboard.md in folder from all its result files.

    Returns:
    - The Results, best score first (unscored ones last)
    """
    folder = Path(folder)
    results = sorted(read_results(folder), key=_rank_key)
    rows = [result.csv_row() for result in results]
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(folder / "grades.csv", text.getvalue())
    write_text_atomic(folder / "leaderboard.md", _leaderboard(results))
    return results


def merge_results(*, result_dirs, out_dir, force=False):
    """
    Merge result folders (say, one per machine) into one gradebook.

    Inputs:
    - result_dirs: Folders written by grade()
    - out_dir: The merged folder (created; may be one of result_dirs)
    - force: If two folders hold different results for one submission, keep the
      one graded last instead of refusing

    Returns:
    - The merged results as dicts (Result.to_json()), best score first
    """
    out_dir = Path(out_dir)
    chosen, conflicts = {}, []
    for folder in [out_dir] * out_dir.is_dir() + [Path(d) for d in result_dirs]:
        if not folder.is_dir():
            raise MergeError(f"{folder} is not a folder of results")
        for path in sorted(folder.glob("*.json")):
            result = read_result(path)
            if result is None:
                continue
            earlier = chosen.get(path.name)
            if earlier and earlier[1] != result:
                if not force:
                    conflicts.append(f"{earlier[0]} and {path}")
                    continue
                if result.extra.get("graded_at", "") < earlier[1].extra.get("graded_at", ""):
                    continue
            chosen[path.name] = (path, result)
    if conflicts:
        raise MergeError("Different results for the same submission: " + "; ".join(conflicts[:10])
                         + ". Remove the stale files, or pass --force to keep the one graded last.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (path, _) in chosen.items():
        if path.resolve() != (out_dir / name).resolve():
            shutil.copyfile(path, out_dir / name)
        # the predictions that go with the chosen result (api.save_predictions), or none
        predictions = path.parent / PREDICTIONS / f"{Path(name).stem}.npy"
        target = out_dir / PREDICTIONS / predictions.name
        if predictions.resolve() != target.resolve():
            target.unlink(missing_ok=True)
            if predictions.is_file():
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(predictions, target)
    return [result.to_json() for result in write_gradebook(out_dir)]


def _rank_key(result):
    return (not result.scored, -(result.raw_score or 0.0), result.submission)


def _leaderboard(results):
    scored = [r for r in results if r.scored]
    unscored = [r for r in results if not r.scored]
    rules = {r.extra.get("points_rule_text") for r in results} - {None}
    lines = ["# Leaderboard", "",
             f"Score: 1 / (2 * MSE) on the hidden test split, keypoints in unit coordinates. "
             f"{len(scored)} scored, {len(unscored)} not scored.",
             f"Points: {rules.pop() if len(rules) == 1 else 'several rules (see grades.csv)'}.", "",
             "| rank | submission | score 1/(2*MSE) | points | isolation |", "|---:|---|---:|---:|---|"]
    lines += [f"| {rank} | {r.submission} | {r.raw_score:.2f} | {r.score:g} | {r.extra.get('isolation', '?')} |"
              for rank, r in enumerate(scored, start=1)]
    if unscored:
        lines += ["", "## Not scored", "", "| submission | failed check |", "|---|---|"]
        lines += [f"| {r.submission} | {(r.failed_check() or Row('?', '', 0, 0, '')).name} |" for r in unscored]
    return "\n".join(lines) + "\n"
