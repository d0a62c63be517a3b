"""
The student release (grader/bundle.py): the zip holds exactly the student
notebooks and package, a data README, the requirements and a README, and nothing
of the solutions, the hidden tests, the data, the models or the grader; unpacked,
its exercise_code imports on its own.
"""
import contextlib
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import nbformat
import pytest

from exercise_code.util.limits import MAX_FILE_BYTES, MAX_PARAMETERS
from grader import bundle, cli, release
from grader.release import REPO_ROOT, SOLUTION_NOTEBOOKS, SOLUTION_PACKAGE, STUDENT_NOTEBOOKS, STUDENT_PACKAGE

TOP = bundle.TOP_FOLDER
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)
DATA_OR_MODEL = (".csv", ".npz", ".pt", ".pth", ".safetensors", ".zip")
GRADER_SECRETS = ["FACIAL_KEYPOINTS_HIDDEN_TEST", "facial_keypoints_test", "course/"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, student_files):
    """The release zip, built once by `python -m grader bundle --out ...`: its path, entries and printout.
    (Its drift check compares with the session's student_files: nbgrader need not run again.)"""
    out = tmp_path_factory.mktemp("release") / "release.zip"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors), pytest.MonkeyPatch.context() as mp:
        mp.setattr(release, "student_versions", lambda: student_files)
        status = cli.main(["bundle", "--out", str(out)])
    assert status == 0, errors.getvalue()
    with zipfile.ZipFile(out) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    return out, entries, printed.getvalue()


@pytest.fixture(scope="module")
def entries(built):
    """Entry name -> bytes."""
    return built[1]


@pytest.fixture(scope="module")
def texts(entries):
    """Entry name -> the text to search: the file's text, and for a notebook also its cells' sources."""
    out = {}
    for name, data in entries.items():
        text = data.decode("utf-8", errors="replace")
        if name.endswith(".ipynb"):
            # In the file, a cell's lines are JSON strings (quotes escaped); search them as written, too.
            text += "\n" + "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
        out[name] = text
    return out


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory):
    """The zip, unzipped: the path of its top folder."""
    dest = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(built[0]) as archive:
        archive.extractall(dest)
    return dest / TOP


def repo_student_files():
    """Name under the top folder -> path in the repo, of every student notebook and package file."""
    files = {f"exercise_09/{p.name}": p for p in STUDENT_NOTEBOOKS.glob("*.ipynb")}
    files.update({p.relative_to(REPO_ROOT).as_posix(): p for p in STUDENT_PACKAGE.rglob("*.py")
                  if not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)})
    return files


def region_lines(pattern):
    """
    Lines longer than 8 characters (stripped) of the regions `pattern` finds in the
    solution sources (.py files and notebook cells), but for those that the same
    sources also show outside every such region (given code, like `n = dout.shape[0]`).
    """
    sources = [p.read_text() for p in SOLUTION_PACKAGE.rglob("*.py")]
    sources += [cell.source for p in SOLUTION_NOTEBOOKS.glob("*.ipynb")
                for cell in nbformat.read(p, as_version=4).cells]
    inside = {line.strip() for source in sources for region in pattern.findall(source)
              for line in region.splitlines() if len(line.strip()) > 8}
    given = "\n".join(pattern.sub("", source) for source in sources)
    return {line for line in inside if line not in given}


def hits(texts, needle):
    """Entries whose text holds needle."""
    return sorted(name for name, text in texts.items() if needle in text)


def test_top_level_entries(entries):
    """Does the zip hold one top folder with exactly the notebooks, the package, the two READMEs and requirements?"""
    assert all(name.startswith(f"{TOP}/") for name in entries)
    top = {PurePosixPath(name).parts[1] for name in entries}
    assert top == {"exercise_09", "exercise_code", "datasets", "requirements.txt", "README.md"}
    assert [name for name in entries if name.startswith(f"{TOP}/datasets/")] == [f"{TOP}/datasets/README.md"]


def test_student_files_are_byte_identical(entries):
    """Is every student notebook and package file in the zip, byte for byte as in the repo, and nothing more?"""
    repo = repo_student_files()
    assert any(name.endswith(".ipynb") for name in repo) and "exercise_code/util/submission.py" in repo
    student_folders = (f"{TOP}/exercise_09/", f"{TOP}/exercise_code/")
    bundled = {name[len(TOP) + 1:] for name in entries if name.startswith(student_folders)}
    assert bundled == set(repo)
    for name, path in repo.items():
        assert entries[f"{TOP}/{name}"] == path.read_bytes(), name


def test_entries_are_sorted_and_the_zip_reproducible(built, tmp_path):
    """Are the entries in sorted order, and do the same files give the same zip, byte for byte?"""
    out, entries, _ = built
    assert list(entries) == sorted(entries)
    again = bundle.write_zip(bundle.bundle_entries(), tmp_path / "again.zip")
    assert again.read_bytes() == out.read_bytes()


def test_no_solution_code(texts):
    """Does no line of any solution region, in .py files or notebooks, reach any file of the zip?"""
    solution_lines = region_lines(SOLUTION_REGION)
    assert solution_lines, "the solutions should have solution regions"
    # (Lines the sources also show outside their regions are given code; region_lines leaves them out.)
    leaked = {(line, name) for line in solution_lines for name in hits(texts, line)}
    assert not leaked
    for marker in ("BEGIN SOLUTION", "END SOLUTION"):
        assert not hits(texts, marker), marker


def test_no_hidden_tests(texts):
    """Are there no hidden tests at all, in the source notebooks or the zip?

    The graded checks run in grader/trusted_checks.py, outside the student's kernel;
    a hidden test in a notebook would run in that kernel, where student code can
    make it pass, so it would only mislead whoever adds it."""
    for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert not hits(texts, marker), marker
    assert not region_lines(HIDDEN_REGION)


def test_no_data_or_model_files(entries):
    """Is there no data, model or archive file in the zip, and no test.csv?"""
    assert not [name for name in entries if name.lower().endswith(DATA_OR_MODEL)]
    assert not [name for name in entries if PurePosixPath(name).name == "test.csv"]


def test_hidden_test_data_is_not_in_the_zip(entries, test_data_dir):
    """Do the hidden test CSV's bytes appear in no file of the zip?"""
    head = (Path(test_data_dir) / "test.csv").read_bytes()[:200]
    assert len(head) == 200
    assert not [name for name, data in entries.items() if head in data]


def test_no_grader_files(entries):
    """Is nothing of the grader or the nbgrader course in the zip?"""
    parts = [PurePosixPath(name).parts for name in entries]
    assert not [p for p in parts if p[1] in {"grader", "solutions", "tests", "course", "build", "models", "output"}]
    assert not [p for p in parts if p[-1] == "nbgrader_config.py"]


@pytest.mark.parametrize("secret", GRADER_SECRETS)
def test_no_grader_secrets(texts, secret):
    """Does no file of the zip name the hidden test data's variable, zip or course folder?"""
    assert not hits(texts, secret)


def test_requirements_pin_what_students_need(entries):
    """Does requirements.txt pin torch as constraints.txt does, and every requirement with ==?"""
    constraints = (REPO_ROOT / "constraints.txt").read_text()
    torch = re.search(r"^torch==(\S+)", constraints, re.MULTILINE).group(1)
    text = entries[f"{TOP}/requirements.txt"].decode()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert all("==" in line for line in lines), lines
    assert lines[0] == f"torch=={torch}"   # torch first
    for line in lines:
        assert re.search(rf"^{re.escape(line)}$", constraints, re.MULTILINE), f"{line} is not in constraints.txt"
    names = {line.split("==")[0] for line in lines}
    assert {"numpy", "pandas", "matplotlib", "tqdm", "ipykernel"} <= names and names & {"jupyter", "notebook"}
    assert not names & {"pytest", "nbgrader"}
    assert f"pip install torch=={torch}" in text and "CUDA" in text


def test_a_package_missing_from_constraints_is_an_error():
    """Is a needed package that constraints.txt does not pin refused, naming it?"""
    versions = bundle.pinned_versions()
    del versions["pandas"]
    with pytest.raises(bundle.BundleError, match="pandas"):
        bundle.requirements_text(versions)


def test_readmes_tell_students_what_to_do(entries):
    """Does the README give set-up, data, notebook, limits and submission; and the data README not the hidden split?"""
    readme = entries[f"{TOP}/README.md"].decode()
    torch = bundle.pinned_versions()["torch"]
    for words in (f"pip install torch=={torch}", "pip install -r requirements.txt", "jupyter notebook",
                  "exercise_09/1_facial_keypoints.ipynb", "python -m exercise_code.util.download --source",
                  f"{MAX_PARAMETERS:,}", f"{MAX_FILE_BYTES / 1e6:.0f} MB", 'create_submission_zip(student_id="',
                  "output/<your id>_exercise_09.zip", 'must not contain "/"'):
        assert words in readme, words
    data_readme = entries[f"{TOP}/datasets/README.md"].decode()
    for words in ("python -m exercise_code.util.download --source PATH_OR_URL_OF_THE_ZIP",
                  "datasets/facial_keypoints/training.csv", "datasets/facial_keypoints/val.csv", "not part of"):
        assert words in data_readme, words
    assert "test.csv" not in data_readme and "facial_keypoints_test" not in data_readme
    assert "hidden" not in data_readme.lower()


def test_unpacked_bundle_imports_its_own_package(unpacked):
    """Does `import exercise_code.util.limits, exercise_code.util.submission` work in the unzipped folder, with its own files?"""
    code = ("import exercise_code.util.limits, exercise_code.util.submission\n"
            "print(exercise_code.util.limits.__file__); print(exercise_code.util.submission.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=unpacked, capture_output=True, text=True,
                            env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.splitlines()]
    assert len(files) == 2 and all(f.resolve().is_relative_to(unpacked.resolve()) for f in files), files


def test_the_printout_counts_files_per_folder(built):
    """Does the command print the files of each folder and the zip's size, and leave no temporary file?"""
    out, entries, printed = built
    code_files = sum(name.startswith(f"{TOP}/exercise_code/") for name in entries)
    assert re.search(rf"\b{code_files} files\s+{TOP}/exercise_code/", printed), printed
    assert f"Wrote {out} (" in printed and "kB" in printed
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_drifted_student_files_are_refused(monkeypatch, tmp_path, capsys):
    """With student files out of date, does the command exit 1, say to regenerate them, and write no zip?"""
    drifted = REPO_ROOT / "exercise_code" / "layers.py"
    monkeypatch.setattr(release, "drifted_files", lambda versions=None: [drifted])
    out = tmp_path / "release" / "release.zip"
    assert cli.main(["bundle", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "python -m grader release" in err and "exercise_code/layers.py" in err
    assert not out.exists() and not (tmp_path / "release").exists()
