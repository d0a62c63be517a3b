"""The submission zip: what goes in, what stays out, and refusals with reasons."""
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from exercise_code.util.limits import MAX_PARAMETERS
from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY, SubmissionError, create_submission_zip

SMALL = {"channels": [4, 8, 8, 8]}


@pytest.fixture
def workspace(tmp_path):
    """A student's folder: notebooks, exercise_code (the solved one) and a saved model."""
    import exercise_code
    root = tmp_path / "pack"
    shutil.copytree(Path(exercise_code.__file__).parent, root / "exercise_code")
    (root / "exercise_09").mkdir()
    (root / "exercise_09" / "1_facial_keypoints.ipynb").write_text("{}")
    (root / "exercise_code" / "__pycache__").mkdir(exist_ok=True)
    (root / "exercise_code" / "__pycache__" / "junk.cpython-311.py").write_text("x = 1")
    save_model(KeypointModel(SMALL), root / "models" / "keypoint_model.pt")
    return root


def build(workspace, **kwargs):
    return create_submission_zip(model_path=workspace / "models" / "keypoint_model.pt",
                                 pack_root=workspace, **kwargs)


def test_contents(workspace, capsys):
    """Does the zip hold the notebooks, every exercise_code .py file and the model, and nothing else?"""
    path = build(workspace)
    assert path == workspace / "output" / "exercise_09.zip"
    names = zipfile.ZipFile(path).namelist()
    assert "exercise_09/1_facial_keypoints.ipynb" in names and MODEL_ENTRY in names
    assert "exercise_code/networks/keypoint_nn.py" in names and "exercise_code/util/csv_reader.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".npz", ".csv"))]
    out = capsys.readouterr().out
    assert f"packed  {MODEL_ENTRY}" in out and "Wrote " in out and " MB, " in out


def test_student_id_names_the_zip(workspace):
    """With a student id, is the zip named <id>_exercise_09.zip?"""
    assert build(workspace, student_id="ab12cde").name == "ab12cde_exercise_09.zip"


def test_large_files_are_left_out(workspace, capsys):
    """Is a notebook over the size bound left out, and said so?"""
    big = workspace / "exercise_09" / "big.ipynb"
    big.write_bytes(b" " * 6_000_000)
    names = zipfile.ZipFile(build(workspace)).namelist()
    assert "exercise_09/big.ipynb" not in names
    assert "skipped exercise_09/big.ipynb: 6.0 MB is over 5 MB" in capsys.readouterr().out


def test_missing_model(workspace):
    """Is a missing model refused, saying how to save one, with no zip written?"""
    (workspace / "models" / "keypoint_model.pt").unlink()
    with pytest.raises(SubmissionError, match="save_model"):
        build(workspace)
    assert not (workspace / "output").exists()


def test_unreadable_model(workspace):
    """Is a corrupt model file refused?"""
    (workspace / "models" / "keypoint_model.pt").write_bytes(b"garbage")
    with pytest.raises(SubmissionError, match="not a model file"):
        build(workspace)


class Wide(nn.Module):
    """A model with exactly `count` parameters of the given dtype."""
    def __init__(self, count, dtype):
        super().__init__()
        self.hparams = {}
        self.w = nn.Parameter(torch.zeros(count, dtype=dtype))


def test_too_many_parameters(workspace):
    """Is a model with 5,000,000 parameters refused (float16, so the file is small)?"""
    save_model(Wide(MAX_PARAMETERS, torch.float16), workspace / "models" / "keypoint_model.pt")
    with pytest.raises(SubmissionError, match="5,000,000 parameters"):
        build(workspace)


class Hoarder(KeypointModel):
    """A real KeypointModel with few parameters, hiding 6,000,000 float16 values in a buffer (a 12 MB file)."""

    def __init__(self, hparams):
        super().__init__(hparams)
        self.register_buffer("table", torch.zeros(6_000_000, dtype=torch.float16))


def test_buffer_hoard_is_refused(workspace):
    """Is a model with few parameters but a 6,000,000-value buffer refused for its count, with no zip written?"""
    path = save_model(Hoarder(SMALL), workspace / "models" / "keypoint_model.pt")
    assert path.stat().st_size < 20_000_000   # so only the parameter limit can catch it
    with pytest.raises(SubmissionError, match="parameters, counting buffers; it must have fewer than 5,000,000"):
        build(workspace)
    assert not (workspace / "output").exists()


def test_file_too_large(workspace):
    """Is a file over 20 MB refused even with few parameters (float64)?"""
    save_model(Wide(3_000_000, torch.float64), workspace / "models" / "keypoint_model.pt")
    with pytest.raises(SubmissionError, match="must be under 20 MB"):
        build(workspace)


def test_weights_must_fit_the_submitted_code(workspace):
    """Is a model whose weights do not fit the submitted KeypointModel refused?"""
    save_model(KeypointModel({"channels": [4, 8, 8, 16]}), workspace / "models" / "keypoint_model.pt")
    contents = torch.load(workspace / "models" / "keypoint_model.pt", weights_only=True)
    contents["hparams_json"] = '{"channels": [4, 8, 8, 8]}'
    torch.save(contents, workspace / "models" / "keypoint_model.pt")
    with pytest.raises(SubmissionError, match="do not fit"):
        build(workspace)


def test_failed_write_keeps_the_old_zip(workspace, monkeypatch):
    """If writing the zip fails, is the previous zip intact and no temporary file left?"""
    path = build(workspace)
    old = path.read_bytes()
    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(zipfile.ZipFile, "write", broken)
    with pytest.raises(OSError):
        build(workspace)
    assert path.read_bytes() == old and [p.name for p in path.parent.iterdir()] == [path.name]
