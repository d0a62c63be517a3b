"""Student files are generated from the solutions, with nbgrader's marker semantics."""
from pathlib import Path

import pytest

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


def test_student_package_has_not_drifted():
    """Is every student file exactly what its solution generates (run `python -m grader.release student`)?"""
    assert solution_files(), "no solution files found"
    assert drifted_files() == []


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
