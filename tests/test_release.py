"""Student files are generated from the solutions, with nbgrader's marker semantics."""
from pathlib import Path

import pytest

from grader import cli, release
from grader.release import (
    REPO_ROOT, MarkerError, SOLUTION_PACKAGE, drifted_files, solution_files, strip_solutions,
)

SOURCE = """\
def f(x):
    out = None
    # TODO: double x
    ### BEGIN SOLUTION
    out = 2 * x
    ### END SOLUTION
    return out

### BEGIN SOLUTION
HELPER = 1
### END SOLUTION
"""


def test_strip_replaces_each_region_with_the_stub():
    """Is each region replaced by the stub at the marker's indentation, and the rest kept?"""
    assert strip_solutions(SOURCE) == """\
def f(x):
    out = None
    # TODO: double x
    # YOUR CODE HERE
    raise NotImplementedError()
    return out

# YOUR CODE HERE
raise NotImplementedError()
"""


@pytest.mark.parametrize("text, words", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the region"),
])
def test_unpaired_markers_are_errors(text, words):
    """Do unpaired or nested markers raise an error naming the file and line?"""
    with pytest.raises(MarkerError, match=f"demo.py:.*{words}"):
        strip_solutions(text, "demo.py")


def test_student_package_has_not_drifted(student_files):
    """Is every student file exactly what its solution generates (run `python -m grader release`)?"""
    assert solution_files(), "no solution files found"
    assert drifted_files(student_files) == []


def test_release_check_exits_1_on_drift(student_files, monkeypatch, capsys):
    """Does `python -m grader release --check` exit 0 when up to date, and 1 naming a drifted file, writing nothing?"""
    monkeypatch.setattr(release, "student_versions", lambda: student_files)
    monkeypatch.setattr(release, "write_student_files", lambda versions=None: pytest.fail("--check wrote files"))
    assert cli.main(["release", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    layers = REPO_ROOT / "exercise_code" / "layers.py"
    monkeypatch.setattr(release, "student_versions", lambda: {**student_files, layers: "# not what it is\n"})
    assert cli.main(["release", "--check"]) == 1
    out = capsys.readouterr().out
    assert "exercise_code/layers.py differs" in out and "python -m grader release" in out


def test_release_writes_the_student_files(monkeypatch, capsys):
    """Does `python -m grader release` regenerate the student files and say which it wrote?"""
    monkeypatch.setattr(release, "write_student_files", lambda versions=None: [REPO_ROOT / "exercise_code" / "x.py"])
    assert cli.main(["release"]) == 0
    assert capsys.readouterr().out == "wrote exercise_code/x.py\n"


def test_no_solution_code_in_student_files():
    """Do the committed student files keep no solution markers?"""
    with_todos = [rel for rel in solution_files() if "### BEGIN SOLUTION" in (SOLUTION_PACKAGE / rel).read_text()]
    assert len(with_todos) == 3   # the dataset, the model, the layers
    for rel in solution_files():
        text = (REPO_ROOT / "exercise_code" / rel).read_text()
        assert "### BEGIN SOLUTION" not in text
        assert ("raise NotImplementedError()" in text) == (rel in with_todos)


def test_the_installed_exercise_code_is_the_solved_package():
    """Do the tests, the main job and the grader import solutions/exercise_code, not the student copy?"""
    import exercise_code
    assert Path(exercise_code.__file__).parent == SOLUTION_PACKAGE
