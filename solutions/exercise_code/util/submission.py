"""
Build the submission zip: your notebooks, your exercise_code and your model.

    from exercise_code.util.submission import create_submission_zip
    create_submission_zip()     # -> output/exercise_09.zip

The zip is refused (with a message that says why) when the model file is
missing, unreadable, or over the limits. Caches, checkpoints, data and large
files are left out.
"""
import zipfile
from pathlib import Path

from .atomic_file import atomic_file
from .limits import count_saved_parameters, file_size_problem, parameter_problem
from .layout import ASSIGNMENT, MODEL_ENTRY, WORKSPACE, submission_zip_name
from .model_files import DEFAULT_MODEL_FILE, ModelFileError, load_model, read_model_file

MAX_OTHER_FILE_BYTES = 5_000_000           # a notebook or source file larger than this is left out
LEFT_OUT_DIRS = {"__pycache__", ".ipynb_checkpoints"}  # caches, never your work


class SubmissionError(RuntimeError):
    """The submission cannot be built; the message says why and what to do."""


def submission_files(pack_root=WORKSPACE):
    """
    The notebooks and source files that go into the zip.

    Returns a tuple of:
    - files: List of (path on disk, name in the zip)
    - skipped: List of (name in the zip, reason) for files left out
    """
    pack_root = Path(pack_root)
    files, skipped = [], []
    candidates = sorted((pack_root / ASSIGNMENT).glob("*.ipynb")) + sorted((pack_root / "exercise_code").rglob("*.py"))
    for path in candidates:
        name = path.relative_to(pack_root).as_posix()
        if LEFT_OUT_DIRS & set(path.relative_to(pack_root).parts):
            continue
        size = path.stat().st_size
        if size > MAX_OTHER_FILE_BYTES:
            skipped.append((name, f"{size / 1e6:.1f} MB is over {MAX_OTHER_FILE_BYTES / 1e6:.0f} MB "
                                  "(clear large notebook outputs)"))
        else:
            files.append((path, name))
    return files, skipped


def check_model_file(model_path):
    """Raise SubmissionError unless model_path is a readable model within the limits that fits the code."""
    model_path = Path(model_path)
    try:
        problem = file_size_problem(model_path) if model_path.is_file() else None
        if problem:
            raise SubmissionError(problem)
        saved = read_model_file(model_path)
        problem = parameter_problem(count_saved_parameters(saved))
        if problem:
            raise SubmissionError(problem)
        load_model(model_path)  # the weights must fit the KeypointModel code you submit
    except ModelFileError as error:
        raise SubmissionError(str(error)) from None


def create_submission_zip(student_id=None, model_path=DEFAULT_MODEL_FILE, out_dir=None, pack_root=WORKSPACE):
    """
    Check the model and write the submission zip.

    Inputs:
    - student_id: Optional; the zip is then named <student_id>_exercise_09.zip
    - model_path: The saved model (default models/keypoint_model.pt)
    - out_dir: Where to write the zip (default output/ in the pack)
    - pack_root: The folder holding exercise_09/ and exercise_code/

    Returns:
    - Path of the zip
    """
    pack_root = Path(pack_root)
    check_model_file(model_path)
    files, skipped = submission_files(pack_root)
    files.append((Path(model_path), MODEL_ENTRY))

    out_dir = Path(out_dir or pack_root / "output")
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / submission_zip_name(student_id)
    with atomic_file(zip_path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in files:
            archive.write(path, name)

    for _, name in files:
        print(f"  packed  {name}")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")
    print(f"Wrote {zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB, {len(files)} files)")
    return zip_path
