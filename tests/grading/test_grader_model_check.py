"""The model checks that run before any student code: the file, its size, plain data, the parameter count."""
import pytest
import torch
from torch import nn

from exercise_code.util.limits import MAX_PARAMETERS
from exercise_code.util.model_files import save_model
from exercise_code.util.submission import MODEL_ENTRY
from grader.errors import CheckFailed
from grader.model_check import check_parameters, find_model_file, read_plain_model
from grading_scenarios import HOARD_VALUES, SMALL, _Flat, _Hoarder, _Payload


@pytest.fixture
def root(tmp_path):
    """An unpacked submission holding a small valid model."""
    from exercise_code.networks import KeypointModel
    save_model(KeypointModel(SMALL), tmp_path / MODEL_ENTRY)
    return tmp_path


def check_all(root):
    return check_parameters(read_plain_model(find_model_file(root)))


def test_valid_model_passes(root):
    """Does a saved KeypointModel pass, with its count read from the tensors (BatchNorm's running stats too)?"""
    from exercise_code.networks import KeypointModel
    model = KeypointModel(SMALL)
    running = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert running > 0 and check_all(root) == sum(p.numel() for p in model.parameters()) + running


def test_missing_model_names_the_pt_files_found(root):
    """Is a model in the wrong place refused, saying where the grader looks and what it found?"""
    (root / MODEL_ENTRY).rename(root / "model.pt")
    with pytest.raises(CheckFailed, match=f"no {MODEL_ENTRY}. The .pt files in it: model.pt") as error:
        find_model_file(root)
    assert error.value.check == "model_file"


def test_size_is_checked_before_loading(root):
    """Is a 21 MB file refused for its size, unread (garbage bytes would otherwise fail to load)?"""
    (root / MODEL_ENTRY).write_bytes(b"\0" * 21_000_000)
    with pytest.raises(CheckFailed, match="is 21.0 MB; it must be under 20 MB") as error:
        find_model_file(root)
    assert error.value.check == "model_file" and str(root) not in str(error.value)  # the name the student knows


def test_pickle_payload_is_refused_and_never_runs(root, tmp_path):
    """Is a model file carrying a code-running pickle refused, its code never run?"""
    marker = tmp_path / "pwned"
    contents = torch.load(root / MODEL_ENTRY, weights_only=True)
    contents["state_dict"]["extra"] = _Payload(marker)
    torch.save(contents, root / MODEL_ENTRY)
    with pytest.raises(CheckFailed, match="is not a model file saved by save_model") as error:
        check_all(root)
    assert error.value.check == "plain_data" and not marker.exists()


def test_whole_module_pickle_is_refused(root):
    """Is a file made by torch.save(model) (a pickled nn.Module) refused, not unpickled?"""
    torch.save(nn.Linear(2, 2), root / MODEL_ENTRY)
    with pytest.raises(CheckFailed, match="is not a model file saved by save_model"):
        check_all(root)


def test_other_class_is_refused(root):
    """Is a model file of another class refused by name?"""
    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.hparams, self.w = {}, nn.Parameter(torch.zeros(3))
    save_model(Other(), root / MODEL_ENTRY)
    with pytest.raises(CheckFailed, match="holds a Other, not a KeypointModel"):
        check_all(root)


@pytest.mark.parametrize("count, allowed", [(MAX_PARAMETERS - 1, True), (MAX_PARAMETERS, False),
                                            (MAX_PARAMETERS + 1, False)])
def test_parameter_limit(root, count, allowed):
    """Is the limit exact: 4,999,999 parameters pass, 5,000,000 and 5,000,001 do not?"""
    save_model(_Flat(count, torch.float16), root / MODEL_ENTRY)
    if allowed:
        assert check_all(root) == count
    else:
        with pytest.raises(CheckFailed, match=f"has {count:,} parameters") as error:
            check_all(root)
        assert error.value.check == "parameters"


def test_buffer_hoard_is_refused(root):
    """Is a model with few parameters but 6,000,000 float16 values in a buffer (a 12 MB file) refused?"""
    model = _Hoarder(SMALL)
    save_model(model, root / MODEL_ENTRY)
    saved = read_plain_model(find_model_file(root))   # under 20 MB, plain data, a "KeypointModel"
    assert sum(saved["state_dict"][name].numel() for name in saved["parameter_names"]) < 10_000   # the old count
    expected = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    assert expected > HOARD_VALUES
    with pytest.raises(CheckFailed, match=f"has {expected:,} parameters, counting buffers") as error:
        check_parameters(saved)
    assert error.value.check == "parameters"
