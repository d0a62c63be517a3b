"""Result files and the gradebook: Gradescope's shape, strict JSON, ranking, merging shards."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from grader.pipeline import STEPS, Context, Submission, make_result
from grader.points import PointsRule
from grader.results import (
    MergeError, Result, merge_results, read_results, write_gradebook, write_json_atomic,
)
from grader.jail import Limits


def result(name, raw, failure=None, points=PointsRule()):
    """A result as the pipeline makes it, without grading anything (its JSON, as written to disk)."""
    context = Context(images=None, count=8, targets=np.zeros((8, 15, 2), np.float32), scratch=None,
                      limits=Limits(10, 512), isolation="jail", points=points, key="k")
    work = Submission(source=Path(f"/in/{name}.zip"), context=context, raw_score=None if failure else raw,
                      timings={"total_s": 1.0})
    failed_at, message = failure or (None, None)
    passed = ["ok"] * ([step.name for step in STEPS].index(failed_at) if failure else len(STEPS))
    return make_result(name, work, passed, message).to_json()


def write(folder, *results):
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        write_json_atomic(folder / f"{r['extra_data']['submission']}.json", r)
    return folder


def test_perfect_score_is_strict_json(tmp_path):
    """Is an infinite score (MSE 0) written as a number, so the file stays strict JSON?"""
    write(tmp_path, result("perfect", float("inf")))
    loaded = json.loads((tmp_path / "perfect.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert loaded["extra_data"]["raw_score"] > 1e300 and loaded["score"] == 100


def test_partial_points_follow_the_rule(tmp_path):
    """With a linear rule, does the score check carry the partial points, and the result's score too?"""
    r = result("half", 75.0, points=PointsRule(max_points=10, zero_at=50))
    assert r["score"] == 5 and r["tests"][-1]["score"] == 5 and r["tests"][-1]["max_score"] == 10


def test_gradebook_ranks_best_first(tmp_path):
    """Are grades.csv and leaderboard.md ordered by raw score, with unscored submissions last?"""
    write(tmp_path, result("b", 120.0), result("a", 300.5), result("c", 40.0),
          result("z", None, failure=("unpack", "The zip is empty.")))
    (tmp_path / "notes.json").write_text('{"not": "a result"}')   # other JSON files are left alone
    write_gradebook(tmp_path)
    with open(tmp_path / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["submission"] for r in rows] == ["a", "b", "c", "z"]
    assert [r["points"] for r in rows] == ["100.0", "100.0", "0.0", "0.0"]
    assert rows[2]["status"] == "scored" and rows[3]["status"] == "failed: The submission unpacks safely"
    assert rows[3]["message"] == "The zip is empty."
    board = (tmp_path / "leaderboard.md").read_text()
    assert board.index("| 1 | a | 300.50 | 100 | jail |") < board.index("| 2 | b | 120.00 | 100 | jail |")
    assert all(row["isolation"] == "jail" for row in rows)   # every table says what the code ran in
    assert "| z | The submission unpacks safely |" in board and "3 scored, 1 not scored" in board


def test_merge_shards_into_one_gradebook(tmp_path):
    """Do the result folders of two machines merge into one gradebook holding every submission?"""
    one = write(tmp_path / "one", result("a", 150.0), result("b", 20.0))
    two = write(tmp_path / "two", result("c", 110.0))
    merged = merge_results(result_dirs=[one, two], out_dir=tmp_path / "all")
    assert [r["extra_data"]["submission"] for r in merged] == ["a", "c", "b"]
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == \
        ["a.json", "b.json", "c.json", "grades.csv", "leaderboard.md"]


def test_merge_refuses_conflicts_unless_forced(tmp_path):
    """Are two different results for one submission refused, and with --force is the later one kept?"""
    old, new = result("a", 50.0), result("a", 150.0)
    old["extra_data"]["graded_at"], new["extra_data"]["graded_at"] = "2026-01-01T00:00:00", "2026-02-01T00:00:00"
    one, two = write(tmp_path / "one", new), write(tmp_path / "two", old)
    with pytest.raises(MergeError, match="Different results for the same submission"):
        merge_results(result_dirs=[one, two], out_dir=tmp_path / "all")
    assert not (tmp_path / "all").exists()
    merged = merge_results(result_dirs=[one, two], out_dir=tmp_path / "all", force=True)
    assert merged[0]["extra_data"]["raw_score"] == 150.0


def test_merge_into_one_of_its_inputs(tmp_path):
    """Can the merged folder be one of the shards (results already there are kept)?"""
    one = write(tmp_path / "one", result("a", 150.0))
    two = write(tmp_path / "two", result("b", 120.0))
    merge_results(result_dirs=[two], out_dir=one)
    assert [r.submission for r in read_results(one)] == ["a", "b"]


def test_merge_refuses_a_missing_folder(tmp_path):
    """Is a result folder that does not exist an error, not an empty merge?"""
    with pytest.raises(MergeError, match="is not a folder of results"):
        merge_results(result_dirs=[tmp_path / "nope"], out_dir=tmp_path / "all")


def test_result_reads_back_from_its_json(tmp_path):
    """Does a Result read from its file give back the very same JSON, for a scored and an unscored one?"""
    for r in (result("a", float("inf")), result("z", None, failure=("code", "It broke."))):
        write(tmp_path, r)
        assert Result.from_json(json.loads((tmp_path / f"{r['extra_data']['submission']}.json").read_text())) \
            .to_json() == r
    with pytest.raises(ValueError, match="not a result"):
        Result.from_json({"not": "a result"})
