"""Student-facing model checks: friendly lines on the solution, on broken models and on the stubs."""
import subprocess
import sys

import torch
from torch import nn

from exercise_code.checks.model_checks import test_keypoint_model as check_keypoint_model
from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from grader.release import REPO_ROOT


def test_solution_passes_all(tmp_path, capsys):
    """Does the reference model pass all five checks, with the numbers found and the limits?"""
    model = KeypointModel({"channels": [4, 8, 8, 8]})
    path = save_model(model, tmp_path / "m.pt")
    model.train()
    assert check_keypoint_model(model, path) == (5, 5)
    out = capsys.readouterr().out
    assert "(limit: fewer than 5,000,000)" in out and "(limit: under 20 MB)" in out
    assert out.strip().endswith("Tests passed: 5/5")
    assert model.training  # the checks gave the model its mode back


class WrongShape(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 15, 2)


def test_wrong_shape_is_a_fail_line(capsys):
    """Is a wrong output shape a FAIL line with what was found and expected, not a traceback?"""
    assert check_keypoint_model(WrongShape()) == (1, 3)
    out = capsys.readouterr().out
    assert "FAIL output shape for a batch: model(images of shape (4, 1, 96, 96)).shape: found (4, 15, 2), expected (4, 30)" in out
    assert "FAIL output shape for one image" in out  # (15, 2) for 1 image is flattened wrongly too


class Huge(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(5_000_000))

    def forward(self, x):
        return torch.zeros(x.shape[0] if x.dim() == 4 else 1, 30)


def test_too_many_parameters_is_a_fail_line(capsys):
    """Does the parameter check fail at 5,000,000 and say what to do?"""
    check_keypoint_model(Huge())
    assert "FAIL parameter count: The model has 5,000,000 parameters" in capsys.readouterr().out


class Hoarder(KeypointModel):
    """A real KeypointModel with few parameters, hiding 6,000,000 float16 values in a buffer (a 12 MB file)."""

    def __init__(self, hparams):
        super().__init__(hparams)
        self.register_buffer("table", torch.zeros(6_000_000, dtype=torch.float16))


def test_buffer_hoard_fails_the_parameter_checks(tmp_path, capsys):
    """Does a model hiding 6,000,000 values in a buffer fail the parameter count and the file check, saying why?"""
    model = Hoarder({"channels": [4, 8, 8, 8]})
    path = save_model(model, tmp_path / "m.pt")
    assert check_keypoint_model(model, path) == (3, 5)   # shapes and file size (12 MB) pass
    out = capsys.readouterr().out
    assert "FAIL parameter count: The model has 6,00" in out and "parameters, counting buffers" in out
    assert "FAIL model file loads: The model has 6,00" in out and "PASS model file size" in out


def test_missing_file_is_a_fail_line(tmp_path, capsys):
    """Is a model file that does not exist a FAIL line?"""
    passed, total = check_keypoint_model(KeypointModel({"channels": [4, 8, 8, 8]}), tmp_path / "none.pt")
    assert (passed, total) == (3, 5)
    assert "FAIL model file size" in capsys.readouterr().out


def test_student_stub_reports_not_implemented():
    """With the untouched student KeypointModel, is the student told what to implement, no traceback?"""
    code = ("import torch\n"
            "from exercise_code.checks.model_checks import test_keypoint_model\n"
            "from exercise_code.networks import KeypointModel\n"
            "try:\n    KeypointModel({})\nexcept NotImplementedError:\n    print('init not implemented')\n"
            "class ForwardStub(KeypointModel):   # __init__ written, forward still the stub\n"
            "    def __init__(self):\n"
            "        torch.nn.Module.__init__(self)\n"
            "        self.layer = torch.nn.Linear(2, 2)\n"
            "print(test_keypoint_model(ForwardStub()))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    lines = result.stdout.splitlines()
    assert lines[0] == "init not implemented", result.stderr
    assert lines.count("NOT IMPLEMENTED: forward in exercise_code/networks/keypoint_nn.py") == 2, lines
    assert lines[-2:] == ["Tests passed: 1/3", "(1, 3)"], lines   # only the parameter count passes
    assert "Traceback" not in result.stdout + result.stderr
