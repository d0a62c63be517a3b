"""The README's main job and the benchmark script run end to end."""
import os
import re
import subprocess
import sys

import pytest

from grader.release import REPO_ROOT
from solutions import train_reference


def run(args):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_end_to_end(train_zip, test_zip, tmp_path):
    """
    Does solutions/end_to_end.py go from the data zips to a graded submission, printing the score?
    And does the reference recipe, on the CI budget, pass the course threshold (score >= 100), on val
    as the training loop measured it and evaluate_model gives it, and on the hidden test split?
    """
    result = run(["solutions/end_to_end.py", "--source", str(train_zip), "--test-source", str(test_zip),
                  "--data-dir", str(tmp_path / "data"), "--test-data-dir", str(tmp_path / "hidden"),
                  "--out", str(tmp_path / "out"), "--minutes", str(train_reference.CI_MINUTES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train 2369, val 472, test 398 faces" in result.stdout
    last_epoch = float(re.findall(r"val score ([\d.]+)", result.stdout)[-1])      # the training loop's
    val_score = float(re.search(r"the trained model scores ([\d.]+) on val", result.stdout)[1])
    test_score = float(re.search(r"score on the hidden test split: ([\d.]+)", result.stdout)[1])
    print(f"reference after {train_reference.CI_MINUTES} minutes: val {val_score}, hidden test {test_score}")
    assert val_score == pytest.approx(last_epoch, abs=0.1) and val_score >= 100 and test_score >= 100
    assert (tmp_path / "out" / "faces.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "exercise_09.zip").is_file()
    assert (tmp_path / "out" / "grades" / "grades.csv").is_file()


def test_end_to_end_without_a_source(tmp_path):
    """Without data or a source, does the main job say what to run (no traceback)?"""
    env_free = {k: v for k, v in os.environ.items() if k != "FACIAL_KEYPOINTS_SOURCE"}
    result = subprocess.run([sys.executable, "solutions/end_to_end.py", "--data-dir", str(tmp_path / "d")],
                            cwd=REPO_ROOT, env=env_free, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "python -m exercise_code.util.download --source" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_benchmark_smoke(data_dir, tmp_path):
    """Does the data benchmark run and print its three measurements (small subset, no targets)?"""
    result = run(["benchmarks/data_pipeline.py", "--data", str(data_dir), "--limit", "64"])
    assert result.returncode == 0, result.stderr
    for words in ("from warm cache", "one epoch", "scoring a"):
        assert words in result.stdout
