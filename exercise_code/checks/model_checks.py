"""
Checks of your KeypointModel, run from the notebook 1_facial_keypoints.ipynb:

    test_keypoint_model(model)                 # output shapes, parameter count (buffers count too)
    test_keypoint_model(model, "models/...")   # and the saved file: it loads, it is small enough

Each prints one line per check and "Tests passed: k/n", and returns (k, n).
"""
from pathlib import Path

import torch

from ..evaluation import evaluating
from ..util.limits import (
    MAX_FILE_BYTES, MAX_PARAMETERS, count_parameters, count_saved_parameters, file_size_problem, parameter_problem,
)
from ..util.model_files import load_model, read_model_file
from ..util.check_runner import CheckFailure, check, expect_equal, run_checks


def _checks_of_model(model):
    @check("output shape for a batch")
    def batch_shape():
        with torch.no_grad():
            out = model(torch.rand(4, 1, 96, 96))
        return expect_equal("model(images of shape (4, 1, 96, 96)).shape", tuple(out.shape), (4, 30))

    @check("output shape for one image")
    def single_shape():
        with torch.no_grad():
            out = model(torch.rand(1, 96, 96))
        return expect_equal("model(image of shape (1, 96, 96)).shape", tuple(out.shape), (1, 30))

    @check("parameter count")
    def parameters():
        count = count_parameters(model)
        problem = parameter_problem(count)
        if problem:
            raise CheckFailure(problem)
        return f"{count:,} parameters, counting buffers (limit: fewer than {MAX_PARAMETERS:,})"

    return [batch_shape, single_shape, parameters]


def _checks_of_file(path):
    @check("model file size")
    def size():
        problem = file_size_problem(path)
        if problem:
            raise CheckFailure(problem)
        return f"{path.stat().st_size / 1e6:.2f} MB (limit: under {MAX_FILE_BYTES / 1e6:.0f} MB)"

    @check("model file loads")
    def loads():
        saved = read_model_file(path)
        problem = parameter_problem(count_saved_parameters(saved))
        if problem:
            raise CheckFailure(problem)
        load_model(path)
        return f"{saved['class_name']}({saved['hparams']}) rebuilt from {path.name}"

    return [size, loads]


def test_keypoint_model(model, model_path=None):
    """
    Check a model's output shapes and size, and optionally its saved file.

    Inputs:
    - model: Your KeypointModel
    - model_path: Optional path of the file written by save_model

    Returns a tuple of:
    - passed: Number of checks that passed
    - total: Number of checks
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"test_keypoint_model needs your model (an nn.Module), got {type(model).__name__}")
    checks = _checks_of_model(model)
    if model_path is not None:
        checks += _checks_of_file(Path(model_path))
    with evaluating(model):  # dropout off; the model gets its own mode back
        return run_checks(checks)
