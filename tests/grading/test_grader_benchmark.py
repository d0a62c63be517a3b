"""The grading benchmark runs and prints its figures (a smoke run: two submissions, few faces, no targets)."""
import subprocess
import sys

import pytest

from grader.release import REPO_ROOT


@pytest.mark.slow
def test_grading_benchmark_smoke(hidden_subset):
    """Does benchmarks/grading.py grade its generated submissions at 1 and 2 jobs and print the cost split?"""
    run = subprocess.run([sys.executable, "benchmarks/grading.py", "--test-data", str(hidden_subset),
                          "--submissions", "2", "--rows", "16"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for words in ("--jobs 1: ", "--jobs 2: ", "speed-up with 2 jobs", "unpack", "load", "inference", "scoring",
                  "job-seconds = the model's inference",
                  "targets not checked"):
        assert words in run.stdout, run.stdout
