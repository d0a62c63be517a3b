"""
The course's nbgrader_config.py: loading it changes nothing and reads no command
line, and generate_assignment never releases an instructor's model, whatever
starts it (the command line, or nbgrader's Python API as the formgrader uses it).
A tiny course with one plain notebook stands in for the real one (which
tests/grading/test_nbgrader_course.py runs through a whole term).
"""
import fnmatch
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

from exercise_code.util.layout import ASSIGNMENT, MODEL_ENTRY
from grader.release import REPO_ROOT, run_nbgrader

PLANTED = b"the instructor's own model, never to be released"


def load_config(root):
    """nbgrader_config.py of the course in root, loaded as nbgrader loads it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def comparable(config):
    """The config as plain data: the hook function by name (each load defines it anew)."""
    return {section: {key: getattr(value, "__qualname__", value) for key, value in settings.items()}
            for section, settings in config.items()}


@pytest.fixture
def course(tmp_path):
    """A course root with the pack's config and one source notebook; an instructor's model and a
    data file beside it. No course/ folder yet, as in a fresh clone."""
    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    source = tmp_path / "solutions" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# A notebook")]), source / "1_tiny.ipynb")
    (source / MODEL_ENTRY).parent.mkdir()
    (source / MODEL_ENTRY).write_bytes(PLANTED)
    (source / "notes.txt").write_text("handed out with the notebooks")
    return tmp_path


def test_loading_the_config_changes_nothing(course, monkeypatch):
    """Does loading the config create no folder, leave sys.path alone, and come out the same whatever the command?"""
    before = sorted(course.rglob("*"))
    path = list(sys.path)
    configs = []
    for argv in (["nbgrader", "generate_assignment", ASSIGNMENT], ["nbgrader", "autograde", ASSIGNMENT],
                 ["jupyter-server"]):
        monkeypatch.setattr(sys, "argv", argv)
        configs.append(comparable(load_config(course)))
    assert sorted(course.rglob("*")) == before and not (course / "course").exists()
    assert sys.path == path
    assert configs[0] == configs[1] == configs[2]


def test_copying_keeps_each_students_model(course):
    """Do zip_collect and autograde (which copy with CourseDirectory.ignore) keep a student's models/ folder?"""
    ignore = CourseDirectory(config=load_config(course)).ignore
    assert ignore == CourseDirectory().ignore   # nbgrader's own list
    assert not [glob for glob in ignore if fnmatch.fnmatch("models", glob)]   # as nbgrader matches it


def generate_with_the_api(root, monkeypatch):
    """As the formgrader does: nbgrader's Python API in a process that is no `nbgrader generate_assignment`."""
    monkeypatch.setattr(sys, "argv", ["jupyter-server"])
    # nbgrader runs the `alembic` of its environment when it makes a gradebook (as run_nbgrader arranges)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = NbGraderAPI(config=load_config(root)).generate_assignment(ASSIGNMENT)
    assert result["success"], result.get("error") or result["log"]


def generate_on_the_command_line(root, monkeypatch):
    run_nbgrader(["generate_assignment", ASSIGNMENT, "--force"], cwd=root)


@pytest.mark.parametrize("generate", [
    generate_with_the_api,
    pytest.param(generate_on_the_command_line, marks=pytest.mark.slow),   # the course test does it, too
])
def test_generation_never_releases_the_instructor_model(course, monkeypatch, generate):
    """Is the model planted in the source folder left out of the release, while the notebook and the
    other files are released and the gradebook is made in course/ (which did not exist)?"""
    generate(course, monkeypatch)
    release = course / "course" / "release" / ASSIGNMENT
    assert (release / "1_tiny.ipynb").is_file()
    assert (release / "notes.txt").read_text() == "handed out with the notebooks"
    assert not (release / MODEL_ENTRY).parent.exists()
    assert not [path for path in release.rglob("*") if path.is_file() and path.read_bytes() == PLANTED]
    assert (course / "course" / "gradebook.db").is_file()
    assert (course / "solutions" / ASSIGNMENT / MODEL_ENTRY).read_bytes() == PLANTED   # the source is untouched


def test_a_submission_is_checked_once_for_all_its_notebooks(tmp_path, monkeypatch):
    """Do a submission's notebooks share one jailed run of the trusted checks (a run is mostly torch's
    import), while another submission, or the same one changed, is checked anew, for every check cell?"""
    from grader import nbgrader_plugins
    from grader.trusted_checks import CELLS
    from grader.unpack import submission_sha256

    runs = []
    monkeypatch.setattr(nbgrader_plugins, "run_checks", lambda submission, cells, **kwargs: (
        runs.append((submission, sorted(cells))), {cell: len(runs) for cell in cells})[1])
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for folder, text in ((alice, "a"), (bob, "b")):
        folder.mkdir()
        (folder / "layers.py").write_text(text)
    def checked(folder):
        return nbgrader_plugins._checked(folder, submission_sha256(folder), "jail", tmp_path, {})

    first = checked(alice)   # notebook 1
    assert checked(alice) == first and len(runs) == 1   # notebook 2
    assert runs[0][1] == sorted(CELLS)
    checked(bob)
    (alice / "layers.py").write_text("changed")
    assert set(checked(alice).values()) == {3} and len(runs) == 3


def test_checks_come_from_the_model_result_of_that_very_submission(tmp_path, monkeypatch):
    """Are the checks in a model's result used only for the same submission (SHA-256) and isolation, and
    does the check worker then run just the cells the result lacks?"""
    from grader import nbgrader_plugins
    from grader.trusted_checks import CELLS, CheckResult
    from grader.unpack import submission_sha256

    runs = []
    monkeypatch.setattr(nbgrader_plugins, "run_checks", lambda submission, cells, **kwargs: (
        runs.append(sorted(cells)), {cell: CheckResult(passed=False) for cell in cells})[1])
    carol = tmp_path / "carol"
    carol.mkdir()
    (carol / "layers.py").write_text("c")
    digest = submission_sha256(carol)
    verdicts = {cell: {"passed": True, "lines": [f"PASS {cell}"]} for cell in CELLS}
    model = {"source_sha256": digest, "isolation": "jail", "trusted_checks": verdicts}
    assert nbgrader_plugins._checks_of({**model, "source_sha256": "0" * 64}, digest, "jail") == {}
    assert nbgrader_plugins._checks_of({**model, "isolation": "none"}, digest, "jail") == {}
    assert nbgrader_plugins._checks_of({**model, "trusted_checks": None}, digest, "jail") == {}
    found = nbgrader_plugins._checks_of(model, digest, "jail")
    assert found == {cell: CheckResult(True, [f"PASS {cell}"]) for cell in CELLS}
    partial = {cell: found[cell] for cell in ("dataset_checks", "model_checks")}
    results = nbgrader_plugins._checked(carol, digest, "jail", tmp_path, partial)
    assert runs == [sorted(set(CELLS) - set(partial))]
    assert {cell: r.passed for cell, r in results.items()} == {cell: cell in partial for cell in CELLS}


def test_autograde_checks_each_notebook_once_and_still_refuses_a_broken_one(course):
    """The config has nbconvert check a notebook against the schema once, after autograde's last step, not
    after each: does autograde's exporter do so, and does a step that breaks the notebook still fail it?"""
    from nbconvert.preprocessors import Preprocessor
    from nbgrader.converters import Autograde

    config = load_config(course)
    exporter = Autograde.class_traits()["exporter_class"].default()(config=config)   # as nbgrader makes it
    assert exporter.optimistic_validation

    class Breaks(Preprocessor):
        def preprocess(self, nb, resources):
            nb.cells[0]["cell_type"] = "not a cell type"
            return nb, resources

    exporter.register_preprocessor(Breaks, enabled=True)
    with pytest.raises(nbformat.ValidationError):
        exporter.from_notebook_node(new_notebook(cells=[new_markdown_cell("# A notebook")]))
