"""Student files are generated from the solutions, with nbgrader's marker semantics."""
import pytest

from grader.release import (
    REPO_ROOT, MarkerError, build_solved_workspace, drifted_files, solution_files, strip_solutions,
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
    for rel in solution_files():
        text = (REPO_ROOT / "exercise_code" / rel).read_text()
        assert "### BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text


def test_solved_workspace(tmp_path):
    """Does the solved workspace hold the solution files and link the data folder?"""
    dest = build_solved_workspace(tmp_path / "solved")
    for rel in solution_files():
        assert (dest / "exercise_code" / rel).read_text() == (REPO_ROOT / "solutions" / "exercise_code" / rel).read_text()
    assert (dest / "datasets").resolve() == (REPO_ROOT / "datasets").resolve()
    build_solved_workspace(dest)  # rebuilding in place works
    assert not [p for p in dest.iterdir() if p.name.startswith(".staging")]
