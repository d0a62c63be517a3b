"""
The notebooks: each student notebook in exercise_09/ is what nbgrader's
preprocessors make of its solution notebook in solutions/, carries no outputs and
no solution, and the solution notebook runs headless from top to bottom in the
solved workspace.
"""
import os
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from grader.release import SOLUTION_NOTEBOOKS, STUDENT_NOTEBOOKS, student_notebook
from conftest import SOLVED_WORKSPACE  # the solved workspace this test session runs against

SOLUTION_PATHS = sorted(SOLUTION_NOTEBOOKS.glob("*.ipynb"))
NOTEBOOK_NAMES = [path.name for path in SOLUTION_PATHS]
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)


def read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    """Is the spatial batch norm notebook among the solution notebooks?"""
    assert "2_spatial_batchnorm.ipynb" in NOTEBOOK_NAMES


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_student_notebook_is_generated_from_its_solution(name):
    """Is exercise_09/<name> exactly what `python -m grader.release student` makes of solutions/<name>?"""
    expected = student_notebook((SOLUTION_NOTEBOOKS / name).read_text())
    assert (STUDENT_NOTEBOOKS / name).read_text() == expected, (
        "Edit solutions/" + name + ", then run: python -m grader.release student")


@pytest.mark.parametrize("path", SOLUTION_PATHS + [STUDENT_NOTEBOOKS / p.name for p in SOLUTION_PATHS],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebooks_have_no_outputs(path):
    """Are the committed notebooks, solution and student, free of outputs and execution counts?"""
    nb = read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_student_notebook_contains_no_solution(name):
    """Is every solution region stubbed out, and does no line of it reach the student notebook?"""
    source, student = read(SOLUTION_NOTEBOOKS / name), read(STUDENT_NOTEBOOKS / name)
    student_text = "\n".join(cell.source for cell in student.cells)
    assert "BEGIN SOLUTION" not in student_text and "END SOLUTION" not in student_text
    solution_lines = {line.strip() for cell in source.cells
                      for region in SOLUTION_REGION.findall(cell.source)
                      for line in region.splitlines() if len(line.strip()) > 8}
    assert solution_lines, "the notebook should have at least one solution region"
    leaked = [line for line in solution_lines if line in student_text]
    assert not leaked
    assert "raise NotImplementedError()" in student_text and "YOUR ANSWER HERE" in student_text


def outputs_text(cell):
    """The text a code cell printed."""
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


@pytest.mark.slow
def test_spatial_batchnorm_notebook_runs_headless(data_dir):
    """Does the solution notebook run top to bottom in the solved workspace, every check passing?"""
    workdir = SOLVED_WORKSPACE / "exercise_09"
    nb = read(workdir / "2_spatial_batchnorm.ipynb")
    env = {**os.environ, "PYTHONPATH": str(SOLVED_WORKSPACE), "FACIAL_KEYPOINTS_DIR": str(data_dir),
           "MPLBACKEND": "Agg"}
    env.pop("NBGRADER_EXECUTION", None)  # run the full experiment, as a student would
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    print(f"2_spatial_batchnorm.ipynb ran in {seconds:.0f} s")

    cells = {cell.id: cell for cell in nb.cells}
    assert str(data_dir) in outputs_text(cells["setup"])  # the notebook used the data we gave it
    for cell_id, total in [("spatial_batchnorm_forward_checks", 3), ("spatial_batchnorm_backward_checks", 3),
                           ("spatial_groupnorm_checks", 6)]:
        assert f"Tests passed: {total}/{total}" in outputs_text(cells[cell_id]), outputs_text(cells[cell_id])
    # The discussion in the notebook says batch norm ends up with the lower validation loss.
    final_mse = dict(re.findall(r"(\w+ batch norm): \d+ s, final validation MSE ([\d.]+)",
                                outputs_text(cells["experiment_run"])))
    assert float(final_mse["with batch norm"]) < float(final_mse["without batch norm"]), final_mse
