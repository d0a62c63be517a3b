"""
The student-facing checks (exercise_code/checks/): they pass on the solution, fail
with a friendly line on broken layers, and report the untouched stubs as
NOT IMPLEMENTED without a traceback.
"""
import os
import subprocess
import sys

import pytest

from exercise_code import layers
from exercise_code.util import check_runner as runner
from exercise_code.checks import spatial_batchnorm_checks as checks
from grader.release import REPO_ROOT

ENTRY_POINTS = {  # entry point -> number of checks
    "test_spatial_batchnorm_forward": 3,
    "test_spatial_batchnorm_backward": 3,
    "test_spatial_batchnorm": 6,
    "test_spatial_groupnorm": 6,
}


def lines_of(capsys):
    return capsys.readouterr().out.strip().splitlines()


@pytest.mark.parametrize("entry, total", ENTRY_POINTS.items())
def test_checks_pass_on_the_solution(entry, total, capsys):
    """Does every check pass on the solution, one PASS line each and the summary last?"""
    assert getattr(checks, entry)() == (total, total)
    lines = lines_of(capsys)
    assert len(lines) == total + 1
    assert all(line.startswith("PASS ") and "(limit 1e-06)" in line for line in lines[:-1])
    assert lines[-1] == f"Tests passed: {total}/{total}"


def test_checks_print_the_same_numbers_on_every_run(capsys):
    """Are the checks' data seeded, so that two runs print identical lines?"""
    checks.test_spatial_batchnorm()
    checks.test_spatial_groupnorm()
    first = lines_of(capsys)
    checks.test_spatial_batchnorm()
    checks.test_spatial_groupnorm()
    assert lines_of(capsys) == first


def test_gradient_checks_of_the_solution_have_a_wide_margin(capsys):
    """Does the solution's gradient error stay 100x below the limit, so that any right answer passes?"""
    checks.test_spatial_batchnorm_backward()
    checks.test_spatial_groupnorm()
    errors = [float(line.split("= ")[1].split(" ")[0]) for line in lines_of(capsys) if "relative error" in line]
    assert len(errors) == 6 and max(errors) < 1e-8


# The solution's functions, for the broken versions below to call while the originals are patched.
SPATIAL_BATCHNORM_FORWARD = layers.spatial_batchnorm_forward
SPATIAL_BATCHNORM_BACKWARD = layers.spatial_batchnorm_backward
SPATIAL_GROUPNORM_BACKWARD = layers.spatial_groupnorm_backward


def wrong_axes_forward(x, gamma, beta, bn_param):
    """A classic bug: reshape to (-1, C) without moving C last first."""
    n, c, h, w = x.shape
    out, cache = layers.batchnorm_forward(x.reshape(-1, c), gamma, beta, bn_param)
    return out.reshape(n, c, h, w), cache


def always_train_forward(x, gamma, beta, bn_param):
    """A bug: test mode normalizes with the batch statistics."""
    return SPATIAL_BATCHNORM_FORWARD(x, gamma, beta, {**bn_param, "mode": "train"})


def frozen_statistics_backward(dout, cache):
    """A bug: the test-mode gradient in train mode (forgets what flows through the statistics)."""
    mode, *rest = cache
    return SPATIAL_BATCHNORM_BACKWARD(dout, ("test", *rest))


def transposed_dgamma_backward(dout, cache):
    """A bug: dgamma of shape (C,) instead of (1, C, 1, 1)."""
    dx, dgamma, dbeta = SPATIAL_GROUPNORM_BACKWARD(dout, cache)
    return dx, dgamma.ravel(), dbeta


@pytest.mark.parametrize("name, broken, entry, failing", [
    ("spatial_batchnorm_forward", wrong_axes_forward, "test_spatial_batchnorm_forward",
     ["FAIL spatial_batchnorm_forward means: max |mean - beta|: found"]),
    ("spatial_batchnorm_forward", always_train_forward, "test_spatial_batchnorm_forward",
     ["FAIL spatial_batchnorm_forward test mode: max |out - nn.BatchNorm2d's|: found"]),
    ("spatial_batchnorm_backward", frozen_statistics_backward, "test_spatial_batchnorm_backward",
     ["FAIL spatial_batchnorm_backward dx: relative error: found"]),
    ("spatial_groupnorm_backward", transposed_dgamma_backward, "test_spatial_groupnorm",
     ["FAIL spatial_groupnorm_backward dgamma: dgamma shape: found (4,), expected (1, 4, 1, 1)"]),
])
def test_checks_fail_on_broken_layers(monkeypatch, capsys, name, broken, entry, failing):
    """Does a typical bug give a FAIL line with what was found and expected?"""
    monkeypatch.setattr(layers, name, broken)
    passed, total = getattr(checks, entry)()
    out = capsys.readouterr().out
    assert passed < total
    for start in failing:
        assert any(line.startswith(start) for line in out.splitlines()), out
    assert f"Tests passed: {passed}/{total}" in out


def test_a_crash_is_a_fail_line_not_a_traceback(monkeypatch, capsys):
    """Is an exception from student code one FAIL line with its message?"""
    def crash(*args):
        raise IndexError("tuple index out of range")
    monkeypatch.setattr(layers, "spatial_groupnorm_forward", crash)
    assert checks.test_spatial_groupnorm() == (0, 6)
    out = capsys.readouterr().out
    assert "FAIL spatial_groupnorm_forward means: IndexError: tuple index out of range" in out
    assert "Traceback" not in out


def test_not_implemented_names_function_and_file(monkeypatch, capsys):
    """Is a NotImplementedError raised in the package reported with its function and file?"""
    def spatial_batchnorm_backward(dout, cache):
        raise NotImplementedError()
    spatial_batchnorm_backward.__code__ = spatial_batchnorm_backward.__code__.replace(
        co_filename=layers.__file__)  # as if the stub were in layers.py
    monkeypatch.setattr(layers, "spatial_batchnorm_backward", spatial_batchnorm_backward)
    assert checks.test_spatial_batchnorm_backward() == (0, 3)
    lines = lines_of(capsys)
    assert lines[:3] == ["NOT IMPLEMENTED: spatial_batchnorm_backward in exercise_code/layers.py"] * 3


def test_runner_outcomes(capsys):
    """Does run_checks print one line per outcome and return (passed, total)?"""
    @runner.check("passes")
    def passes():
        return runner.expect_at_most("error", 3e-9, 1e-6)

    @runner.check("is NaN")
    def is_nan():
        return runner.expect_at_most("error", float("nan"), 1e-6)

    def plain_function():  # no @check: named after the function
        return runner.expect_equal("shape", (2, 3), (2, 30))

    @runner.check("outside the package")
    def outside():
        raise NotImplementedError("no forward")

    assert runner.run_checks([passes, is_nan, plain_function, outside]) == (1, 4)
    assert lines_of(capsys) == [
        "PASS passes: error = 3e-09 (limit 1e-06)",
        "FAIL is NaN: error: found nan, expected at most 1e-06",
        "FAIL plain_function: shape: found (2, 3), expected (2, 30)",
        "NOT IMPLEMENTED: outside the package (no forward)",
        "Tests passed: 1/4",
    ]
    assert repr(passes) == "Check('passes')"


def run_with_student_package(code):
    """Run code in a fresh interpreter that imports the real student package from the repo."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_untouched_stubs_report_not_implemented():
    """On the untouched student stubs, do the checks say what to implement, exit cleanly and pass 0?"""
    result = run_with_student_package(
        "import exercise_code\n"
        "from exercise_code.checks import spatial_batchnorm_checks as c\n"
        "print(exercise_code.__file__)\n"
        "print(c.test_spatial_batchnorm(), c.test_spatial_groupnorm())\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == str(REPO_ROOT / "exercise_code" / "__init__.py")  # not the solved copy
    assert lines[1:7] == ["NOT IMPLEMENTED: spatial_batchnorm_forward in exercise_code/layers.py"] * 6
    assert lines[7] == "Tests passed: 0/6"
    assert lines[8:14] == ["NOT IMPLEMENTED: spatial_groupnorm_forward in exercise_code/layers.py"] * 6
    assert lines[14:] == ["Tests passed: 0/6", "(0, 6) (0, 6)"]
    assert "Traceback" not in result.stdout + result.stderr
