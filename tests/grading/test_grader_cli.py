"""
The command line (python -m grader VERB) and grade()'s batch behaviour: exit codes,
configuration errors, re-runs, shards and merging. Most of these grade submissions
that fail at unpacking (no worker starts), so they are quick; one runs a real
submission. The release and bundle verbs are tested in tests/test_release.py and
tests/test_bundle.py.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import grader.cli as cli
from exercise_code.data import FacialKeypointsDataset
from exercise_code.evaluation import evaluate_model
from grader.api import GradingConfigError, _keep_private, grade
from grader.release import REPO_ROOT
from grader.results import merge_results
from grading_scenarios import build_submission


def junk(folder, *names):
    """Submissions that are not zips: graded in a moment, each to a clear zero."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.zip").write_bytes(b"not a zip")
    return folder


def test_missing_test_file_is_a_usage_error(tmp_path, capsys):
    """Does a missing hidden test file exit 2 with a message that says what to pass, grading nothing?"""
    code = cli.main(["grade", str(junk(tmp_path / "in", "a")), "--test-data", str(tmp_path / "nope"), "--out",
                     str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
    assert "the hidden test file is not there. Pass --test-data" in capsys.readouterr().err


def test_folder_without_test_csv_is_a_usage_error(tmp_path, capsys):
    """Is a --test-data folder without test.csv refused the same way?"""
    (tmp_path / "data").mkdir()
    assert cli.main(["grade", str(junk(tmp_path / "in", "a")), "--test-data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "out")]) == 2
    assert "test.csv: the hidden test file is not there" in capsys.readouterr().err


def test_unwritable_output_is_a_usage_error(tmp_path, hidden_subset, capsys):
    """Does an output folder that cannot be made exit 2, saying so?"""
    (tmp_path / "file").write_text("")
    assert cli.main(["grade", str(junk(tmp_path / "in", "a")), "--test-data", str(hidden_subset),
                     "--out", str(tmp_path / "file" / "out")]) == 2
    assert "Cannot write results to" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--shard", "3/2"], "--shard must be K/N"),
    (["--jobs", "0"], "Need jobs >= 1"),
    (["--zero-points-at", "200"], "zero_at (200.0) must be below full_at"),
])
def test_bad_options_are_usage_errors(tmp_path, hidden_subset, capsys, args, words):
    """Are impossible options refused with exit 2 and a reason?"""
    assert cli.main(["grade", str(junk(tmp_path / "in", "a")), "--test-data", str(hidden_subset),
                     "--out", str(tmp_path / "out"), *args]) == 2
    assert words in capsys.readouterr().err


def test_missing_submission_is_a_usage_error(tmp_path, hidden_subset, capsys):
    """Is a submission path that does not exist (a typo) refused, not graded as a zero?"""
    assert cli.main(["grade", str(tmp_path / "typo.zip"), "--test-data", str(hidden_subset),
                     "--out", str(tmp_path / "out")]) == 2
    assert "typo.zip: no such file or folder" in capsys.readouterr().err


def test_unknown_checks_are_refused_before_grading(tmp_path, hidden_subset):
    """Is a trusted check that does not exist (a typo) refused, saying which ones there are, with nothing written?"""
    with pytest.raises(GradingConfigError, match=r"the trusted checks are \[.dataset_checks.*; got \[.datset_checks.\]"):
        grade(submissions=[tmp_path], test_data=hidden_subset, out_dir=tmp_path / "out", checks=("datset_checks",))
    assert not (tmp_path / "out").exists()


def test_checks_as_another_user_are_refused(tmp_path, hidden_subset):
    """Isolation "user" (a platform's container) has no jail for the check worker: are checks refused there?"""
    from grader.sandbox import IsolationError, detect_isolation

    try:
        detect_isolation("user")
    except IsolationError as error:
        pytest.skip(f"isolation 'user' cannot start here: {error}")
    with pytest.raises(GradingConfigError, match="never with isolation 'user'"):
        grade(submissions=[tmp_path], test_data=hidden_subset, out_dir=tmp_path / "out", isolation="user",
              checks=("dataset_checks",))
    assert not (tmp_path / "out").exists()


def test_hidden_data_inside_the_jail_is_refused():
    """Would the grader refuse to run if the test file sat where the jail shows files (inside Python's prefix)?"""
    with pytest.raises(GradingConfigError, match="which the worker can read"):
        _keep_private("jail", test_csv=Path(sys.prefix).resolve() / "test.csv")
    _keep_private("none", test_csv=Path(sys.prefix).resolve() / "test.csv")   # no jail, nothing to keep out of it


def test_bad_submissions_still_exit_0(tmp_path, hidden_subset, capsys):
    """Does a batch of broken submissions exit 0, with a result each, a table and a progress bar?"""
    code = cli.main(["grade", str(junk(tmp_path / "in", "a", "b")), "--test-data", str(hidden_subset),
                     "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["a.json", "b.json", "grades.csv", "leaderboard.md"]
    assert "a.zip is not a zip file" in out and "2 submissions, 0 scored" in out
    assert "2/2" in err   # the progress bar


def test_cli_defaults_are_the_apis(monkeypatch, tmp_path):
    """Are the options a user leaves out exactly grade()'s own defaults?"""
    seen = {}

    def fake_grade(**kwargs):
        seen.update(kwargs)
        return []
    fake_grade.__kwdefaults__ = grade.__kwdefaults__
    monkeypatch.setattr(cli, "grade", fake_grade)
    assert cli.main(["grade", "x.zip", "--test-data", "t.csv", "--out", str(tmp_path)]) == 0
    for name, default in grade.__kwdefaults__.items():
        if name not in ("progress", "scratch_dir", "checks"):   # checks: nbgrader's autograde asks, in Python
            assert seen[name] == default, name


def test_without_a_verb_the_command_grades(monkeypatch, tmp_path):
    """Is `python -m grader SUBMISSION... --test-data ...` (no verb, as before there were verbs) the grade verb?"""
    calls = []

    def fake_grade(**kwargs):
        calls.append(kwargs)
        return []
    fake_grade.__kwdefaults__ = grade.__kwdefaults__
    monkeypatch.setattr(cli, "grade", fake_grade)
    args = ["x.zip", "y.zip", "--test-data", "t.csv", "--out", str(tmp_path), "--jobs", "2"]
    assert cli.main(args) == 0 and cli.main(["grade", *args]) == 0
    assert calls[0] == calls[1] and calls[0]["submissions"] == ["x.zip", "y.zip"] and calls[0]["jobs"] == 2


def test_merge_defaults_are_the_apis(monkeypatch, tmp_path):
    """Does `merge` without --force pass merge_results() its own default?"""
    seen = {}

    def fake_merge(**kwargs):
        seen.update(kwargs)
        return []
    fake_merge.__kwdefaults__ = merge_results.__kwdefaults__
    monkeypatch.setattr(cli, "merge_results", fake_merge)
    assert cli.main(["merge", "m1", "m2", "--out", str(tmp_path)]) == 0
    assert seen == {"result_dirs": ["m1", "m2"], "out_dir": str(tmp_path), **merge_results.__kwdefaults__}


def test_help_lists_every_verb(capsys):
    """Does `python -m grader --help` name the five verbs, and exit 0?"""
    with pytest.raises(SystemExit) as exit:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and all(verb in out for verb in ("grade", "autograde", "merge", "release", "bundle"))


def test_rerun_skips_graded_submissions_unless_forced(tmp_path, hidden_subset):
    """Does a re-run keep results already graded, grade a resubmission again, and --force grade them all?"""
    submissions, out = junk(tmp_path / "in", "a", "b"), tmp_path / "out"
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out)
    stamp = lambda: {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}  # noqa: E731
    first = stamp()
    junk(submissions, "c")
    results = grade(submissions=[submissions], test_data=hidden_subset, out_dir=out)
    assert [r["extra_data"]["submission"] for r in results] == ["a", "b", "c"]
    assert {k: v for k, v in stamp().items() if k != "c.json"} == first        # a and b were not graded again
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out, force=True)
    assert all(stamp()[name] != first[name] for name in first)
    forced = stamp()
    (submissions / "b.zip").write_bytes(b"b, resubmitted")
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out)
    assert {name for name, mtime in stamp().items() if mtime != forced[name]} == {"b.json"}   # only what changed


def test_rerun_regrades_grader_errors_and_new_test_data(tmp_path, hidden_subset):
    """Is a result the grader itself failed on graded again, and is everything regraded on new test data?"""
    submissions, out = junk(tmp_path / "in", "a", "b"), tmp_path / "out"
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out)
    broken = json.loads((out / "a.json").read_text())
    broken["extra_data"]["grader_error"] = "the machine ran out of disk"
    (out / "a.json").write_text(json.dumps(broken))
    before = (out / "b.json").stat().st_mtime_ns
    grade(submissions=[submissions], test_data=hidden_subset, out_dir=out)
    assert json.loads((out / "a.json").read_text())["extra_data"]["grader_error"] is None
    assert (out / "b.json").stat().st_mtime_ns == before
    smaller = tmp_path / "smaller.csv"
    smaller.write_text("".join(hidden_subset.read_text().splitlines(keepends=True)[:9]))
    grade(submissions=[submissions], test_data=smaller, out_dir=out)
    assert (out / "b.json").stat().st_mtime_ns != before


def test_shards_merge_into_the_full_gradebook(tmp_path, hidden_subset, capsys):
    """Do two shards grade disjoint halves that merge into what one run would give?"""
    submissions = junk(tmp_path / "in", "a", "b", "c", "d", "e")
    for k in (1, 2):
        assert cli.main(["grade", str(submissions), "--test-data", str(hidden_subset),
                         "--out", str(tmp_path / f"m{k}"), "--shard", f"{k}/2"]) == 0
    one, two = ({p.stem for p in (tmp_path / f"m{k}").glob("*.json")} for k in (1, 2))
    assert one == {"a", "c", "e"} and two == {"b", "d"}
    assert cli.main(["merge", str(tmp_path / "m1"), str(tmp_path / "m2"), "--out", str(tmp_path / "all")]) == 0
    assert "Merged 5 results (0 scored)" in capsys.readouterr().out
    lines = (tmp_path / "all" / "grades.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["a", "b", "c", "d", "e"]


def test_merge_conflict_is_a_usage_error(tmp_path, hidden_subset, capsys):
    """Does merging two different results for one submission exit 2, naming the files?"""
    for k in (1, 2):
        grade(submissions=[junk(tmp_path / f"in{k}", "a")], test_data=hidden_subset, out_dir=tmp_path / f"m{k}")
    assert cli.main(["merge", str(tmp_path / "m1"), str(tmp_path / "m2"), "--out", str(tmp_path / "all")]) == 2
    assert "Different results for the same submission" in capsys.readouterr().err


@pytest.mark.slow
def test_grading_run_from_the_command_line(tmp_path, valid_model, hidden_subset, isolation):
    """Does `python -m grader grade` grade a real submission to full points, print its table and exit 0?"""
    zip_path = build_submission("valid", tmp_path, valid_model)
    command = [sys.executable, "-m", "grader", "grade", str(zip_path), "--test-data", str(hidden_subset),
               "--out", str(tmp_path / "out")]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    row = re.search(r"^valid\s+100\s+([\d.]+)\s+scored$", run.stdout, re.MULTILINE)
    assert row, run.stdout
    expected = evaluate_model(valid_model, FacialKeypointsDataset(hidden_subset))   # the same model, scored here
    assert float(row.group(1)) == pytest.approx(expected, abs=0.01)
    assert "1 submissions, 1 scored" in run.stdout and f"Isolation: {isolation}." in run.stdout
    assert "1/1" in run.stderr

    # Isolation "none", asked for by name: the grader runs, warns, and every result says so.
    run = subprocess.run(command + ["--force", "--isolation", "none"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and "warning: Grading with isolation 'none', as asked" in run.stderr
    result = json.loads((tmp_path / "out" / "valid.json").read_text())
    assert result["score"] == 100 and result["extra_data"]["isolation"] == "none"
    assert "NO isolation (asked for by name)" in result["extra_data"]["isolation_text"]


def test_the_command_imports_no_plotting_library_until_it_draws(tmp_path):
    """Does building the command's parser (every verb's start, in a Gradescope container once per student)
    leave matplotlib unimported? It costs a second; only the report and the charts need it."""
    code = ("import sys; from grader import cli; cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    result = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_refuses_the_student_copy_of_exercise_code():
    """Run from the repo root, where `python -m` finds the student copy first, does the grader refuse, in one line?"""
    result = subprocess.run([sys.executable, "-m", "grader", "grade", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: The grader imported the student copy of exercise_code"), result.stderr
    assert "Traceback" not in result.stderr and "python -P -m" in result.stderr
