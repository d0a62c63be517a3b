"""
The student version of every file with a TODO is generated from its solution.

Solution files live in solutions/exercise_code/, at the same relative path as in
exercise_code/. They mark the code students write with nbgrader's markers:

    ### BEGIN SOLUTION
    ... reference code ...
    ### END SOLUTION

nbgrader strips these markers from notebooks only (it copies .py files verbatim),
so this module does the same for .py files, with the same semantics: the region is
replaced by `# YOUR CODE HERE` and `raise NotImplementedError()` at the marker's
indentation. The solution notebooks, solutions/exercise_09/*.ipynb, are nbgrader's
source notebooks; `nbgrader generate_assignment` makes the student notebooks in
exercise_09/ of them (the course's own release, course/release/exercise_09/, is the same).

    python -m grader release           # regenerate the student files in exercise_code/ and exercise_09/
    python -m grader release --check   # exit 1 if exercise_code/ or exercise_09/ has drifted

(the verbs are in grader/cli.py; this module holds what they call)
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .trusted import ASSIGNMENT

REPO_ROOT = Path(__file__).resolve().parents[1]
STUDENT_PACKAGE = REPO_ROOT / "exercise_code"
SOLUTION_PACKAGE = REPO_ROOT / "solutions" / "exercise_code"
SOLUTION_NOTEBOOKS = REPO_ROOT / "solutions" / "exercise_09"   # nbgrader source notebooks
STUDENT_NOTEBOOKS = REPO_ROOT / "exercise_09"   # their student versions

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]


class MarkerError(ValueError):
    """Solution markers that do not pair up."""


def strip_solutions(text, name="<text>"):
    """
    Replace each solution region of a source file with the student stub.

    Inputs:
    - text: Source code with ### BEGIN SOLUTION / ### END SOLUTION lines
    - name: File name for error messages

    Returns:
    - The student version of the text
    """
    out, region_start = [], None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if region_start is not None:
                raise MarkerError(f"{name}:{number}: {BEGIN} inside the region opened at line {region_start}")
            region_start = number
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(f"{indent}{stub}\n" for stub in CODE_STUB)
        elif marker == END:
            if region_start is None:
                raise MarkerError(f"{name}:{number}: {END} without a {BEGIN}")
            region_start = None
        elif region_start is None:
            out.append(line)
    if region_start is not None:
        raise MarkerError(f"{name}:{region_start}: {BEGIN} is never closed by {END}")
    return "".join(out)


def generate_assignment(sources):
    """
    Run `nbgrader generate_assignment` on source notebooks, in a scratch course.

    The scratch course's source folder holds the notebooks and nothing else, so
    nothing but notebooks can reach the release. No nbgrader_config.py applies:
    generation needs none of the course's settings.

    Inputs:
    - sources: Dict of notebook file name -> source notebook JSON

    Returns:
    - Dict of notebook file name -> student notebook JSON: solutions stubbed,
      hidden tests removed, outputs cleared, cells locked, checksums set
    """
    with tempfile.TemporaryDirectory(prefix="generate-") as tmp:
        course = Path(tmp)
        source = course / "source" / ASSIGNMENT
        source.mkdir(parents=True)
        for name, text in sources.items():
            (source / name).write_text(text)
        run_nbgrader(["generate_assignment", ASSIGNMENT, "--force", f"--CourseDirectory.root={course}",
                      f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"], cwd=course)
        return {name: (course / "release" / ASSIGNMENT / name).read_text() for name in sources}


def run_nbgrader(args, cwd, env=None, check=True):
    """
    Run `nbgrader <args>` with this Python, in folder cwd (whose nbgrader_config.py applies).

    nbgrader runs the `alembic` command of its own environment, so that
    environment's bin/ goes first on PATH. Returns the CompletedProcess; with
    check, raises RuntimeError with nbgrader's log when it fails.
    """
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(f"nbgrader {args[0]} failed:\n{run.stdout}{run.stderr}")
    return run


def solution_files():
    """Relative paths (e.g. data/facial_keypoints_dataset.py) of the files of the solved package."""
    return sorted(p.relative_to(SOLUTION_PACKAGE) for p in SOLUTION_PACKAGE.rglob("*.py"))


def student_versions():
    """Map each student file path to the text generated from its solution."""
    files = {
        STUDENT_PACKAGE / rel: strip_solutions((SOLUTION_PACKAGE / rel).read_text(), str(rel))
        for rel in solution_files()
    }
    sources = {path.name: path.read_text() for path in sorted(SOLUTION_NOTEBOOKS.glob("*.ipynb"))}
    for name, text in generate_assignment(sources).items():
        files[STUDENT_NOTEBOOKS / name] = text
    return files


def stale_files(versions):
    """Student files that no solution file generates any more (say, after a file moved)."""
    present = set(STUDENT_PACKAGE.rglob("*.py")) | set(STUDENT_NOTEBOOKS.glob("*.ipynb"))
    return sorted(present - set(versions))


def drifted_files(versions=None):
    """
    Student files that differ from what their solution generates (missing and stale ones included).

    Inputs:
    - versions: {path: text} from student_versions(), if already at hand; None generates it
      (nbgrader runs: about 10 s)

    Returns:
    - List of paths
    """
    versions = student_versions() if versions is None else versions
    return [path for path, text in versions.items()
            if not path.is_file() or path.read_text() != text] + stale_files(versions)


def write_student_files(versions=None):
    """Regenerate the student files (from versions, if given) and remove stale ones; return the paths that changed."""
    versions = student_versions() if versions is None else versions
    changed = []
    for path, text in versions.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    for path in stale_files(versions):
        path.unlink()
        changed.append(path)
    return changed
