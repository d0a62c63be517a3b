"""
The notebooks: each student notebook in exercise_09/ is what nbgrader's
preprocessors make of its solution notebook in solutions/, carries no outputs and
no solution, and the solution notebook runs headless from top to bottom in the
solved workspace; under nbgrader's autograde it trains nothing.
"""
import os
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from exercise_code.evaluation import evaluate_model
from exercise_code.util.model_files import load_model, save_model
from exercise_code.networks import KeypointModel
from grader.release import SOLUTION_NOTEBOOKS, STUDENT_NOTEBOOKS

SOLUTION_PATHS = sorted(SOLUTION_NOTEBOOKS.glob("*.ipynb"))
NOTEBOOK_NAMES = [path.name for path in SOLUTION_PATHS]
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)


def read(path):
    return nbformat.read(path, as_version=4)


def is_solution_cell(cell):
    """Whether nbgrader treats the cell as one the student writes."""
    return cell.metadata.get("nbgrader", {}).get("solution", False)


def test_there_are_notebooks():
    """Are the main notebook and the spatial batch norm notebook the solution notebooks?"""
    assert NOTEBOOK_NAMES == ["1_facial_keypoints.ipynb", "2_spatial_batchnorm.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_student_notebook_is_generated_from_its_solution(name, student_files):
    """Is exercise_09/<name> exactly what `python -m grader release` makes of solutions/<name>?"""
    expected = student_files[STUDENT_NOTEBOOKS / name]
    assert (STUDENT_NOTEBOOKS / name).read_text() == expected, (
        "Edit solutions/exercise_09/" + name + ", then run: python -m grader release")


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
    assert "raise NotImplementedError()" in student_text
    if any(cell.cell_type == "markdown" and is_solution_cell(cell) for cell in source.cells):
        assert "YOUR ANSWER HERE" in student_text


def outputs_text(cell):
    """The text a code cell printed."""
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


def run_notebook(workspace, name, data_dir, nbgrader_execution=None):
    """
    Run workspace/exercise_09/<name> headless, as a student would, or as nbgrader does.

    Inputs:
    - workspace: A folder holding exercise_code/ and exercise_09/
    - name: The notebook's file name
    - data_dir: The folder with training.csv and val.csv
    - nbgrader_execution: None for a student's run, or "autograde" / "validate"

    Returns a tuple of:
    - cells: Dict cell id -> executed cell
    - seconds: Wall-clock time of the run
    """
    workdir = workspace / "exercise_09"
    nb = read(workdir / name)
    env = {**os.environ, "PYTHONPATH": str(workspace), "FACIAL_KEYPOINTS_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    env.pop("NBGRADER_EXECUTION", None)  # a student's run does everything
    if nbgrader_execution:
        env["NBGRADER_EXECUTION"] = nbgrader_execution
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute(env=env)  # raises on the first cell that fails
    return {cell.id: cell for cell in nb.cells}, time.perf_counter() - start


def shorten(path, cell_id, old, new):
    """Replace `old` by `new` in one cell of the notebook at path (a shorter training budget for the tests)."""
    notebook = read(path)
    cell = next(cell for cell in notebook.cells if cell.get("id") == cell_id)
    assert old in cell.source, cell.source
    cell.source = cell.source.replace(old, new)
    nbformat.write(notebook, path)


def stderr_of_graded_cells(cells):
    """Cell id -> what it wrote to stderr, for the graded cells that did (nbgrader scores those 0)."""
    stderr = {cell_id: "".join(o.text for o in cell.get("outputs", []) if o.get("name") == "stderr")
              for cell_id, cell in cells.items() if cell.metadata.get("nbgrader", {}).get("grade")}
    return {cell_id: text for cell_id, text in stderr.items() if text}


@pytest.mark.slow
def test_spatial_batchnorm_notebook_runs_headless(data_dir, solved_workspace, tmp_path):
    """Does the solution notebook run top to bottom in the solved workspace, every check passing?"""
    workspace = solved_workspace(tmp_path / "workspace")
    # Half the experiment's epochs: batch norm is ahead long before the end.
    shorten(workspace / "exercise_09" / "2_spatial_batchnorm.ipynb", "experiment_setup", "1024, 6, 32", "1024, 3, 32")
    cells, seconds = run_notebook(workspace, "2_spatial_batchnorm.ipynb", data_dir)
    print(f"2_spatial_batchnorm.ipynb ran in {seconds:.0f} s")

    assert str(data_dir) in outputs_text(cells["setup"])  # the notebook used the data we gave it
    for cell_id, total in [("spatial_batchnorm_forward_checks", 3), ("spatial_batchnorm_backward_checks", 3),
                           ("spatial_groupnorm_checks", 6)]:
        assert f"Tests passed: {total}/{total}" in outputs_text(cells[cell_id]), outputs_text(cells[cell_id])
    # The discussion in the notebook says batch norm ends up with the lower validation loss.
    final_mse = dict(re.findall(r"(\w+ batch norm): \d+ s, final validation MSE ([\d.]+)",
                                outputs_text(cells["experiment_run"])))
    assert float(final_mse["with batch norm"]) < float(final_mse["without batch norm"]), final_mse


@pytest.mark.slow
def test_spatial_batchnorm_notebook_skips_the_experiment_when_grading(data_dir, solved_workspace, tmp_path):
    """Under nbgrader's autograde, do the checks still run while the training experiment is skipped?"""
    cells, seconds = run_notebook(solved_workspace(tmp_path / "workspace"), "2_spatial_batchnorm.ipynb", data_dir, "autograde")
    assert "Skipping the batch norm experiment" in outputs_text(cells["experiment_run"])
    assert "Tests passed: 3/3" in outputs_text(cells["spatial_batchnorm_forward_checks"])
    assert not stderr_of_graded_cells(cells)


@pytest.mark.slow
def test_facial_keypoints_notebook_runs_headless(data_dir, val_set, tmp_path, solved_workspace):
    """Does the main notebook run top to bottom, train a model that passes, save it and zip it?"""
    workspace = solved_workspace(tmp_path / "workspace")
    # One epoch of 8: the seeded model still passes (a score of about 118; 2 epochs give about 220).
    shorten(workspace / "exercise_09" / "1_facial_keypoints.ipynb", "hparams", '"epochs": 8', '"epochs": 1')
    cells, seconds = run_notebook(workspace, "1_facial_keypoints.ipynb", data_dir)
    score = float(re.search(r"Validation score: ([\d.]+)", outputs_text(cells["predictions"])).group(1))
    print(f"1_facial_keypoints.ipynb ran in {seconds:.0f} s; validation score {score:.1f}")

    assert str(data_dir) in outputs_text(cells["setup"])  # the notebook used the data we gave it
    assert "Dataset checks passed" in outputs_text(cells["dataset_checks"])  # hidden tests included
    assert "Tests passed: 3/3" in outputs_text(cells["model_tests"])
    assert "Tests passed: 5/5" in outputs_text(cells["save_and_zip"])  # the model and its file
    assert score >= 100  # the course's pass mark (8 epochs of the reference recipe reach about 600)
    assert f"Validation score: {score:.1f}" in outputs_text(cells["model_score"])
    # The file holds the trained model: loaded again, it scores what the notebook printed.
    model = load_model(workspace / "models" / "keypoint_model.pt")
    assert evaluate_model(model, val_set) == pytest.approx(score, abs=0.1)
    assert (workspace / "output" / "exercise_09.zip").is_file()
    assert not stderr_of_graded_cells(cells)


@pytest.mark.slow
def test_facial_keypoints_notebook_does_not_train_when_grading(data_dir, tmp_path, solved_workspace):
    """Under nbgrader's autograde, does the main notebook check the saved model without training or writing files?"""
    workspace = solved_workspace(tmp_path / "workspace")
    model_path = save_model(KeypointModel({"channels": [4, 8, 8, 8], "stem": 4}),
                            workspace / "models" / "keypoint_model.pt")
    saved = model_path.read_bytes()
    cells, seconds = run_notebook(workspace, "1_facial_keypoints.ipynb", data_dir, "autograde")
    print(f"1_facial_keypoints.ipynb under autograde ran in {seconds:.0f} s")

    assert f"Loaded the saved model from {model_path}" in outputs_text(cells["model_build"])
    assert "Not training while grading" in outputs_text(cells["training_run"])
    assert "Model checks passed" in outputs_text(cells["model_checks"])  # on the loaded model
    assert "Validation score: " in outputs_text(cells["model_score"])
    assert model_path.read_bytes() == saved and not (workspace / "output").exists()
    assert not stderr_of_graded_cells(cells)
    assert seconds < 90  # no training: kernel start, data, checks (nbgrader allows 120 s per cell)
