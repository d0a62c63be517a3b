"""
The student's path, in a real browser: JupyterLab opens the main notebook of a
student who solved everything, "Run All Cells" runs it as a student would (with
one epoch of training instead of eight, as tests/test_notebooks.py does), and we
check what the student sees in the page and what the saved notebook holds: the
face grid drawn, the training's progress bar and loss plot, the checks' PASS
lines, the validation score, the submission zip on disk, and no error and
nothing on stderr in any cell.

Screenshots of the moments a student looks at go to build/browser/<test>/.
"""
import re
import time
import zipfile

import nbformat
import pytest

from lab_server import LabServer
from test_notebooks import shorten

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NOTEBOOK = "exercise_09/1_facial_keypoints.ipynb"
RUN_TIMEOUT_S = 300   # Run All: about 1.5 minutes on 2 idle cores (one epoch, scoring, saving, zipping)
# No cell may write to stderr, a warning included: nbgrader scores a graded cell with stderr as failed,
# and our progress bar (tqdm's) writes to stdout for that reason (exercise_code/training.py).

# The state of every code cell, read from the DOM: its prompt ("[3]:", "[*]:", "[ ]:"), the text
# and the images of its outputs, and the MIME types of its outputs (errors and stderr are
# rendered as application/vnd.jupyter.stderr).
READ_CELLS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')].map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
    text: [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
    images: [...cell.querySelectorAll('.jp-OutputArea-output img')].map(img => ({
        loaded: img.complete, width: img.naturalWidth, height: img.naturalHeight})),
    mimes: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type]')].map(o => o.dataset.mimeType),
}))"""


def kernel_status(page):
    """The kernel's status as the notebook's toolbar shows it ("idle", "busy", ...), or "no kernel"
    before a kernel is connected (the indicator then says "idle" too)."""
    return page.evaluate("""() => {
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const name = panel && panel.querySelector('.jp-KernelName');
        const indicator = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
        if (!name || !indicator || name.innerText.trim() === 'No Kernel') return 'no kernel';
        return indicator.dataset.status;
    }""")


def wait_for(condition, timeout_s, what, poll_s=0.5):
    """Call condition() until it returns something true, and return that; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(poll_s)
    pytest.fail(f"Timed out after {timeout_s} s waiting for {what}")


def read_cells(page, ids):
    """{cell id: the cell as the page shows it (READ_CELLS)}; fails at once if a cell shows an error or
    stderr, rather than waiting for a run that Run All Cells stopped at that cell."""
    cells = dict(zip(ids, page.evaluate(READ_CELLS)))
    for cell_id, cell in cells.items():
        if "application/vnd.jupyter.stderr" in cell["mimes"]:
            pytest.fail(f"Cell {cell_id} shows an error or stderr:\n{cell['text'][-3000:]}")
    return cells


def saved_notebook(path):
    """The notebook at path once JupyterLab has saved it with its outputs, else None (also while it writes
    the file: jupyter_server's "atomic" save backs the file up, then writes it in place)."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except nbformat.reader.NotJSONError:
        return None
    return notebook if any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code") else None


def menu_command(page, menu, command):
    """Click a menu of JupyterLab's menu bar, then its item that runs `command`, as a student does."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").first.click()


def stderr_texts(cell):
    """What a cell of the saved notebook wrote to stderr, and its errors ("name: value")."""
    texts = [o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]
    texts += [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
    return texts


def saved_text(cell):
    """The text outputs of a cell of the saved notebook."""
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


def saved_pngs(cell):
    return [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


@pytest.fixture
def workspace(solved_workspace, tmp_path):
    """A student's folder with everything solved, and one epoch of training instead of eight."""
    workspace = solved_workspace(tmp_path / "workspace")
    shorten(workspace / NOTEBOOK, "hparams", '"epochs": 8', '"epochs": 1')
    return workspace


def test_a_student_runs_the_notebook_in_jupyterlab(workspace, data_dir, page, screenshot, tmp_path):
    """In JupyterLab, does Run All Cells show the faces, the training and its plot, every check passing and a
    validation score, write the submission zip, and leave no error or stderr in any cell?"""
    started = time.perf_counter()
    env = {"FACIAL_KEYPOINTS_DIR": str(data_dir), "PYTHONPATH": str(workspace),
           "MPLBACKEND": None,            # the kernel's inline backend, as a student has it (make exports Agg)
           "NBGRADER_EXECUTION": None}    # a student's run: it trains
    with LabServer(workspace, home=tmp_path / "lab", env=env) as server:
        page.goto(server.url(f"lab/tree/{NOTEBOOK}"))
        ids = [cell.get("id") for cell in nbformat.read(workspace / NOTEBOOK, as_version=4).cells]
        wait_for(lambda: len(page.evaluate(READ_CELLS)) == len(ids), 120, "the notebook's cells in the page")
        wait_for(lambda: kernel_status(page) == "idle", 120, "the kernel to start")
        screenshot(page, "1_opened")
        opened_s = time.perf_counter() - started

        menu_command(page, "Run", "runmenu:run-all")
        # The training cell while it trains: its progress bar (tqdm's, on stdout, erased at the end of
        # the epoch) shows the batches done and the loss.
        training = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(ids.index("training_run"))
        bars = []

        def training_shown():
            text = read_cells(page, ids)["training_run"]["text"]
            bar = re.search(r"epoch 1/1:\s+\d+%.*?\| *(\d+)/\d+ .*loss=[\d.]+", text)
            bars.extend([bar[0]] if bar else [])
            return (bar and int(bar[1]) >= 5) or "Trained in" in text   # a few batches in, or done already
        wait_for(training_shown, RUN_TIMEOUT_S, "the training's progress bar", poll_s=0.2)
        training.scroll_into_view_if_needed()
        screenshot(training, "2_training_progress")

        def finished():
            cells = read_cells(page, ids)
            running = [c for c in cells.values() if c["code"] and "*" in c["prompt"]]   # "[*]:" runs or waits
            return cells if not running and kernel_status(page) == "idle" else None
        wait_for(finished, RUN_TIMEOUT_S, "Run All Cells to finish")
        time.sleep(1)   # then read once more: the last figures have decoded
        dom = wait_for(finished, 30, "Run All Cells to finish")
        run_s = time.perf_counter() - started - opened_s

        menu_command(page, "File", "docmanager:save")
        saved = wait_for(lambda: saved_notebook(workspace / NOTEBOOK), 30, "the saved notebook with its outputs")
        cell_of = {cell.get("id"): cell for cell in saved.cells}

        for name in ("face_grid", "training_run", "predictions", "dataset_checks", "model_tests", "save_and_zip",
                     "model_score"):
            cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(ids.index(name))
            cell.scroll_into_view_if_needed()
            screenshot(cell, f"3_{name}")
        screenshot(page, "4_finished")   # the last cells, the score among them: in view after the loop above
        page_errors, blocked, log = list(page.errors), list(page.blocked), server.log()
    print(f"JupyterLab: notebook open and kernel idle in {opened_s:.0f} s; Run All Cells took {run_s:.0f} s")

    # Every code cell ran, in order, and shows neither an error nor stderr.
    code_ids = [cell_id for cell_id in ids if dom[cell_id]["code"]]
    counts = [re.search(r"\[(\d+)\]", dom[cell_id]["prompt"]) for cell_id in code_ids]
    assert all(counts), {cell_id: dom[cell_id]["prompt"] for cell_id in code_ids}
    assert [int(c[1]) for c in counts] == sorted(int(c[1]) for c in counts)
    for cell_id in code_ids:
        assert "application/vnd.jupyter.stderr" not in dom[cell_id]["mimes"], (cell_id, dom[cell_id]["text"])
        assert not stderr_texts(cell_of[cell_id]), (cell_id, stderr_texts(cell_of[cell_id]))
        assert cell_of[cell_id].execution_count is not None, cell_id

    # What the student sees: the faces, the training and its losses, the checks, the score.
    def shows_images(cell_id, count=1):
        images = dom[cell_id]["images"]
        return len(images) >= count and all(i["loaded"] and i["width"] > 100 and i["height"] > 100 for i in images)
    assert shows_images("one_face") and shows_images("face_grid") and shows_images("augmentation")
    assert "Data folder: " + str(data_dir) in dom["setup"]["text"]   # the kernel read the data we gave it
    assert bars, "no progress bar was seen while the model trained"
    assert re.search(r"epoch 1/1: train loss [\d.]+, validation loss [\d.]+", dom["training_run"]["text"])
    assert "Trained in" in dom["training_run"]["text"] and shows_images("training_run")   # the loss plot
    assert "Dataset checks passed" in dom["dataset_checks"]["text"]
    assert dom["model_tests"]["text"].count("PASS") == 3 and "Tests passed: 3/3" in dom["model_tests"]["text"]
    assert dom["save_and_zip"]["text"].count("PASS") == 5 and "Tests passed: 5/5" in dom["save_and_zip"]["text"]
    assert "FAIL" not in "".join(cell["text"] for cell in dom.values())
    score = float(re.search(r"Validation score: ([\d.]+)", dom["predictions"]["text"])[1])
    assert score >= 100 and shows_images("predictions"), score   # one epoch of the reference recipe: about 118
    assert f"Validation score: {score:.1f}" in dom["model_score"]["text"]

    # The saved notebook holds the same: the figures as PNGs, the lines as text.
    for cell_id in ("face_grid", "training_run", "predictions"):
        assert saved_pngs(cell_of[cell_id]), cell_id
    assert "Tests passed: 5/5" in saved_text(cell_of["save_and_zip"])
    assert f"Validation score: {score:.1f}" in saved_text(cell_of["model_score"])

    # On disk: the model and the submission zip, which holds it, the notebooks and exercise_code/.
    assert (workspace / "models" / "keypoint_model.pt").is_file()
    with zipfile.ZipFile(workspace / "output" / "exercise_09.zip") as archive:
        names = set(archive.namelist())
    assert {"models/keypoint_model.pt", NOTEBOOK, "exercise_code/networks/keypoint_nn.py"} <= names, names

    assert not page_errors, page_errors   # JupyterLab itself raised no JavaScript error
    assert not blocked, blocked           # and needed nothing from outside 127.0.0.1
    assert "Traceback" not in log, log[-3000:]
