"""
Saving and loading keypoint models as files that load without running any code.

A model file is written by torch.save and holds only plain data, so it can be
read with torch.load(weights_only=True) (no unpickling of arbitrary objects):

    {"format": "i2dl-keypoint-model-v1",
     "class_name": "KeypointModel",
     "hparams_json": '{"channels": [...], ...}',    # the hparams, as JSON text
     "parameter_names": ["stem.0.weight", ...],     # which tensors are parameters
     "state_dict": {"stem.0.weight": tensor, ...}}  # parameters and buffers, on the CPU

Loading rebuilds KeypointModel(hparams) from the package's own code and loads the
weights into it. We never save the nn.Module itself: that would be a pickle, and
loading a pickle can run any code.
"""
import json
import warnings
from pathlib import Path

import torch

from .atomic_file import atomic_file
from .layout import MODEL_ENTRY, WORKSPACE

FORMAT = "i2dl-keypoint-model-v1"
KEYS = {"format", "class_name", "hparams_json", "parameter_names", "state_dict"}
MAX_HPARAMS_CHARS = 65_536   # hparams are a few settings: nothing else may travel in them
DEFAULT_MODEL_FILE = WORKSPACE / MODEL_ENTRY   # where the grader looks


class ModelFileError(ValueError):
    """A model cannot be saved, or a file is not a model that fits; the message says why."""


def save_model(model, path=DEFAULT_MODEL_FILE):
    """
    Save a model's weights and hparams in one file, atomically.

    Inputs:
    - model: An nn.Module with a JSON-serializable `hparams` dict (KeypointModel)
    - path: Where to write; folders are created. Default models/keypoint_model.pt

    Returns:
    - path, as a Path. The model itself is not changed or moved off its device.
    """
    path = Path(path)
    hparams = getattr(model, "hparams", None)
    if not isinstance(hparams, dict):
        raise ModelFileError(f"{type(model).__name__} has no `hparams` dict; set self.hparams = hparams in __init__")
    try:
        hparams_json = json.dumps(hparams)
    except (TypeError, ValueError) as error:
        raise ModelFileError(
            f"The model's hparams must be JSON-serializable (numbers, strings, booleans, None, lists, "
            f"dicts with string keys): {error}. Keep objects such as devices or layers out of hparams.") from None
    contents = {
        "format": FORMAT,
        "class_name": type(model).__name__,
        "hparams_json": hparams_json,
        "parameter_names": [name for name, _ in model.named_parameters()],
        # Copies on the CPU: the caller's model stays where it is.
        "state_dict": {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        torch.save(contents, f)
    return path


def read_model_file(path):
    """
    Read and check a model file without building the model (and without running any code).

    Inputs:
    - path: A file written by save_model

    Returns a dict with:
    - class_name: String
    - hparams: Dict
    - state_dict: Dict name -> CPU tensor
    - parameter_names: List of the state_dict names that are parameters
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no model file here. Train your model and save it with save_model(model).")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles on stderr; we raise instead
            warnings.simplefilter("ignore")
            contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds: pickle, zip, runtime errors
        # Not torch's own message: it suggests weights_only=False, which would run the file's code.
        raise ModelFileError(
            f"{path} is not a model file saved by save_model: it cannot be read as plain tensors "
            f"({type(error).__name__}). Save your model with exercise_code.util.model_files.save_model.") from None
    problem = _shape_problem(contents)
    if problem:
        raise ModelFileError(f"{path} is not a model file saved by save_model: {problem}")
    return {
        "class_name": contents["class_name"],
        "hparams": json.loads(contents["hparams_json"]),
        "state_dict": contents["state_dict"],
        "parameter_names": contents["parameter_names"],
    }


def _shape_problem(contents):
    """What is wrong with the loaded structure, or None."""
    if not isinstance(contents, dict) or contents.get("format") != FORMAT:
        return f"expected a dict with format {FORMAT!r}"
    if set(contents) != KEYS:   # anything else in the file could carry weights past the limits
        return f"expected exactly the keys {sorted(KEYS)}, got {sorted(map(str, contents))}"
    if not isinstance(contents.get("class_name"), str):
        return "class_name is missing"
    if isinstance(contents["hparams_json"], str) and len(contents["hparams_json"]) > MAX_HPARAMS_CHARS:
        return f"hparams_json is over {MAX_HPARAMS_CHARS:,} characters; hparams are settings, not data"
    try:
        if not isinstance(json.loads(contents.get("hparams_json")), dict):
            return "hparams_json is not a JSON object"
    except (TypeError, ValueError):
        return "hparams_json is not valid JSON"
    state_dict, names = contents.get("state_dict"), contents.get("parameter_names")
    if not isinstance(state_dict, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        return "state_dict is not a dict of named tensors"
    if any(v.layout != torch.strided or v.is_nested for v in state_dict.values()):
        return "state_dict holds sparse or nested tensors; save plain (dense) ones"
    if not isinstance(names, list) or not set(names) <= set(state_dict):
        return "parameter_names do not name tensors of the state_dict"
    return None


def load_model(path=DEFAULT_MODEL_FILE, model_class=None):
    """
    Rebuild a saved model: model_class(hparams) with the saved weights, in eval mode.

    Inputs:
    - path: A file written by save_model
    - model_class: The class to build; default exercise_code.networks.KeypointModel

    Returns:
    - model on the CPU
    """
    if model_class is None:
        from ..networks import KeypointModel  # imported here: the student's own class, as it is now
        model_class = KeypointModel
    saved = read_model_file(path)
    if saved["class_name"] != model_class.__name__:
        raise ModelFileError(f"{path} holds a {saved['class_name']}, not a {model_class.__name__}")
    model = model_class(saved["hparams"])
    result = _load_weights(model, saved["state_dict"])
    if result:
        raise ModelFileError(
            f"The weights in {path} do not fit {model_class.__name__}(hparams): {result}. "
            "Did the model code change after saving? Train and save again with the current code.")
    return model.eval()


def _load_weights(model, state_dict):
    """Load strictly; return None, or what does not fit (missing/unexpected names, shapes)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [f"{k} saved {tuple(state_dict[k].shape)}, model {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}"
                for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if items]
    if problems:
        return "; ".join(problems)
    model.load_state_dict(state_dict)
    return None
