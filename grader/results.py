"""
Results: one JSON file per submission in the shape of Gradescope's results.json,
and the gradebook made from all of them (grades.csv, leaderboard.md).

    {"score": 100.0,                       # points, after the PointsRule
     "execution_time": 4.2,                # seconds for this submission
     "output": "Score 1/(2*MSE) = 131.2 ...",
     "tests": [{"name", "status": "passed" | "failed", "score", "max_score", "output"}, ...],
     "leaderboard": [{"name": "1/(2*MSE)", "value": 131.2, "order": "desc"}],
     "extra_data": {"grader": "i2dl-keypoints", "submission": "alice", "raw_score": 131.2, ...}}

See https://gradescope-autograders.readthedocs.io/en/latest/specs/ for the shape.
The gradebook is always rebuilt from every result file in the folder, so results
from several machines merge by copying them into one folder (merge_results).
"""
import csv
import io
import json
import math
import shutil
import sys
from pathlib import Path

from exercise_code.util.atomic_file import atomic_file

GRADER_NAME = "i2dl-keypoints"   # marks our result files among other JSON files
LEADERBOARD_NAME = "1/(2*MSE)"
TABLES = ("grades.csv", "leaderboard.md")
CSV_COLUMNS = ["submission", "points", "max_points", "raw_score", "status", "message", "execution_time_s",
               "isolation", "graded_at", "source"]


class MergeError(ValueError):
    """Result folders that cannot be merged; the message says which files conflict."""


def build_result(*, name, tests, raw_score, points, max_points, output, execution_time, extra):
    """
    One submission's result, Gradescope-shaped.

    Inputs:
    - name: The submission's name (its file name without .zip)
    - tests: List of dicts {name, status, score, max_score, output}, one per check
    - raw_score: Float 1/(2*MSE), or None when the submission could not be scored
    - points, max_points: Floats, after the PointsRule
    - output: The summary the student reads first
    - execution_time: Seconds
    - extra: Dict for instructors (isolation, timings, ...), kept under extra_data

    Returns:
    - A dict that json.dumps writes without NaN or Infinity
    """
    # A perfect prediction has MSE 0 and an infinite score, which JSON cannot hold.
    value = None if raw_score is None else raw_score if math.isfinite(raw_score) else sys.float_info.max
    return {
        "score": points,
        "execution_time": round(execution_time, 3),
        "output": output,
        "tests": tests,
        "leaderboard": [{"name": LEADERBOARD_NAME, "value": value if value is not None else 0.0, "order": "desc"}],
        "extra_data": {"grader": GRADER_NAME, "submission": name, "raw_score": value,
                       "max_points": max_points, **extra},
    }


def failed_check(result):
    """The first failed test of a result, or None when all passed."""
    return next((test for test in result["tests"] if test["status"] == "failed"), None)


def write_json_atomic(path, data):
    """Write JSON to path via a temporary file and a rename: readers see the old file or the new one."""
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_text_atomic(path, text):
    """Write text to path via a temporary file and a rename: a crash never leaves half a file."""
    with atomic_file(path, "w", newline="") as f:
        f.write(text)


def read_result(path):
    """The result in path, or None if it is not one of ours (or is unreadable)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(result, dict) and isinstance(result.get("extra_data"), dict) \
        and result["extra_data"].get("grader") == GRADER_NAME and isinstance(result.get("tests"), list)
    return result if ok else None


def read_results(folder):
    """Every result in folder, sorted by submission name."""
    results = (read_result(path) for path in sorted(Path(folder).glob("*.json")))
    return sorted((r for r in results if r), key=lambda r: r["extra_data"]["submission"])


def write_gradebook(folder):
    """
    Rebuild grades.csv and leaderboard.md in folder from all its result files.

    Returns:
    - The results, best score first (unscored ones last)
    """
    folder = Path(folder)
    results = sorted(read_results(folder), key=_rank_key)
    rows = [_csv_row(result) for result in results]
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
    - The merged results, best score first
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
                if result["extra_data"].get("graded_at", "") < earlier[1]["extra_data"].get("graded_at", ""):
                    continue
            chosen[path.name] = (path, result)
    if conflicts:
        raise MergeError("Different results for the same submission: " + "; ".join(conflicts[:10])
                         + ". Remove the stale files, or pass --force to keep the one graded last.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (path, _) in chosen.items():
        if path.resolve() != (out_dir / name).resolve():
            shutil.copyfile(path, out_dir / name)
    return write_gradebook(out_dir)


def _rank_key(result):
    raw = result["extra_data"].get("raw_score")
    return (raw is None, -(raw or 0.0), result["extra_data"]["submission"])


def _csv_row(result):
    extra = result["extra_data"]
    failed = None if extra.get("raw_score") is not None else failed_check(result)   # a low score is no failure
    return {
        "submission": extra["submission"], "points": result["score"], "max_points": extra.get("max_points"),
        "raw_score": "" if failed else f"{extra['raw_score']:.4f}",
        "status": f"failed: {failed['name']}" if failed else "scored",
        "message": failed["output"].strip().splitlines()[0][:300] if failed else "",
        "execution_time_s": result.get("execution_time"), "isolation": extra.get("isolation"),
        "graded_at": extra.get("graded_at"), "source": extra.get("source"),
    }


def _leaderboard(results):
    scored = [r for r in results if r["extra_data"].get("raw_score") is not None]
    unscored = [r for r in results if r["extra_data"].get("raw_score") is None]
    rules = {r["extra_data"].get("points_rule_text") for r in results} - {None}
    lines = ["# Leaderboard", "",
             f"Score: 1 / (2 * MSE) on the hidden test split, keypoints in unit coordinates. "
             f"{len(scored)} scored, {len(unscored)} not scored.",
             f"Points: {rules.pop() if len(rules) == 1 else 'several rules (see grades.csv)'}.", "",
             "| rank | submission | score 1/(2*MSE) | points | isolation |", "|---:|---|---:|---:|---|"]
    lines += [f"| {rank} | {r['extra_data']['submission']} | {r['extra_data']['raw_score']:.2f} | {r['score']:g} "
              f"| {r['extra_data'].get('isolation', '?')} |" for rank, r in enumerate(scored, start=1)]
    if unscored:
        lines += ["", "## Not scored", "", "| submission | failed check |", "|---|---|"]
        lines += [f"| {r['extra_data']['submission']} | {(failed_check(r) or {'name': '?'})['name']} |"
                  for r in unscored]
    return "\n".join(lines) + "\n"

