"""Parallel grading: a grader crash on one submission loses only that submission, and we know which one."""
import json
from pathlib import Path

import grader.cluster as cluster
from grader.api import grade

CRASH = b"not a zip, and the grader crashes on it"


def junk(folder, *names):
    """Submissions that are not zips: graded in a moment (no worker starts), each to a clear zero."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.zip").write_bytes(b"not a zip")
    return folder


def test_a_crash_loses_only_its_own_task(tmp_path, hidden_subset, monkeypatch):
    """Does a grader crash on one submission (on the local cluster of --jobs 2) leave every other result,
    and report that one as the grader's fault?"""
    honest = cluster.predict

    def crash_on_c(source, context):   # runs on a worker, which sees the submission's bytes, not its name
        if Path(source).read_bytes() == CRASH:
            raise MemoryError("the grader's machine ran out of memory")
        return honest(source, context)
    monkeypatch.setattr(cluster, "predict", crash_on_c)
    submissions, out = junk(tmp_path / "in", *"abcdef"), tmp_path / "out"
    (submissions / "c.zip").write_bytes(CRASH)
    results = {r["extra_data"]["submission"]: r for r in grade(submissions=[submissions], test_data=hidden_subset,
                                                                  out_dir=out, jobs=2)}
    assert sorted(results) == list("abcdef") and sorted(p.stem for p in out.glob("*.json")) == list("abcdef")
    for name in "abdef":
        assert results[name]["tests"][0]["output"].startswith(f"{name}.zip is not a zip file")
        assert not results[name]["extra_data"]["grader_error"]
    crashed = results["c"]
    assert crashed["score"] == 0 and "The grader itself failed on this submission (MemoryError)" in crashed["output"]
    assert "ran out of memory" in crashed["extra_data"]["grader_error"]   # the details, for the instructors

    monkeypatch.setattr(cluster, "predict", honest)   # the next run grades it again, and only it
    before = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out, jobs=2)
    after = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert [name for name in before if before[name] != after[name]] == ["c"]
    assert json.loads((out / "c.json").read_text())["extra_data"]["grader_error"] is None


def test_one_job_keeps_the_order(tmp_path, hidden_subset, monkeypatch):
    """With one job, are submissions graded in the order given, in this process?"""
    order, honest = [], cluster.predict

    def recording(source, context):
        order.append(Path(source).stem)
        return honest(source, context)
    monkeypatch.setattr(cluster, "predict", recording)
    grade(submissions=[junk(tmp_path / "in", "e", "b", "d", "a")], test_data=hidden_subset, out_dir=tmp_path / "out")
    assert order == ["a", "b", "d", "e"]   # submission order: by name
