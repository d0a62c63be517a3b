"""Model files: weights and hparams only, loadable without running code, written atomically."""
import pickle

import pytest
import torch
from torch import nn

import exercise_code.util.model_files as model_files
from exercise_code.util.limits import (
    MAX_FILE_BYTES, MAX_PARAMETERS, count_parameters, count_saved_parameters, file_size_problem, parameter_problem,
)
from exercise_code.util.model_files import ModelFileError, load_model, read_model_file, save_model
from exercise_code.networks import KeypointModel

SMALL = {"channels": [4, 8, 8, 8], "stem": 4}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return KeypointModel(SMALL)


def test_round_trip(model, tmp_path):
    """Does load_model rebuild the same model (same outputs, eval mode) from the file?"""
    path = save_model(model, tmp_path / "models" / "keypoint_model.pt")
    loaded = load_model(path)
    assert not loaded.training and loaded.hparams == SMALL
    x = torch.rand(3, 1, 96, 96)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_file_is_plain_data(model, tmp_path):
    """Does the file load with torch.load(weights_only=True) and hold no nn.Module?"""
    path = save_model(model, tmp_path / "m.pt")
    contents = torch.load(path, weights_only=True)
    assert set(contents) == {"format", "class_name", "hparams_json", "parameter_names", "state_dict"}
    assert contents["class_name"] == "KeypointModel"
    assert all(isinstance(t, torch.Tensor) for t in contents["state_dict"].values())


def test_parameter_count_from_the_file(model, tmp_path):
    """Does the file give the same count as the model, parameters and BatchNorm's running stats alike?"""
    saved = read_model_file(save_model(model, tmp_path / "m.pt"))
    assert count_saved_parameters(saved) == count_parameters(model)
    assert len(saved["state_dict"]) > len(saved["parameter_names"])  # batchnorm buffers are saved too
    assert count_parameters(model) > sum(p.numel() for p in model.parameters())  # and counted


def test_saving_keeps_the_model_as_it_was(model, tmp_path):
    """Are the model's tensors untouched, and the saved weights copies (later training does not change them)?"""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_model(model, tmp_path / "m.pt")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        next(model.parameters()).add_(1)
    assert torch.equal(read_model_file(path)["state_dict"]["stem.0.0.weight"], before["stem.0.0.weight"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_saving_does_not_move_a_gpu_model(model, tmp_path):
    """Does a model on the GPU stay there when saved?"""
    model.cuda()
    save_model(model, tmp_path / "m.pt")
    assert all(p.is_cuda for p in model.parameters())


def test_failed_save_keeps_the_old_file(model, tmp_path, monkeypatch):
    """If writing fails half-way, is the previous file intact and no temporary file left?"""
    path = save_model(model, tmp_path / "m.pt")
    old = path.read_bytes()
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(model_files.torch, "save", disk_full)
    with pytest.raises(OSError):
        save_model(model, path)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


@pytest.mark.parametrize("hparams, words", [
    ({"device": torch.device("cpu")}, "JSON-serializable"),
    ({"layer": nn.ReLU()}, "JSON-serializable"),
    (None, "no `hparams` dict"),
])
def test_unsaveable_hparams(model, tmp_path, hparams, words):
    """Are hparams that JSON cannot hold refused with a message that says what to keep out?"""
    model.hparams = hparams
    with pytest.raises(ModelFileError, match=words):
        save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_weights_that_do_not_fit(model, tmp_path):
    """When the code changed after saving, does loading list missing, unexpected and mis-shaped weights?"""
    path = save_model(model, tmp_path / "m.pt")
    contents = torch.load(path, weights_only=True)
    contents["state_dict"]["extra.weight"] = torch.zeros(1)
    del contents["state_dict"]["heatmap.bias"]
    contents["parameter_names"].remove("heatmap.bias")
    contents["state_dict"]["heatmap.weight"] = torch.zeros(5, 5)
    torch.save(contents, path)
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    for words in ("missing ['heatmap.bias']", "unexpected ['extra.weight']", "heatmap.weight saved (5, 5)", "Train and save again"):
        assert words in str(error.value)


def test_other_class(tmp_path):
    """Is a file of another class refused by name?"""
    class Other(nn.Module):
        def __init__(self, hparams=None):
            super().__init__()
            self.hparams = {}
            self.w = nn.Parameter(torch.zeros(1))
    path = save_model(Other(), tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match="holds a Other, not a KeypointModel"):
        load_model(path)


class Payload:
    """Unpickling this would create a file: proof that code ran."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_never_runs(tmp_path):
    """Is a pickle that would run code refused, and does its code never run?"""
    marker = tmp_path / "pwned"
    path = tmp_path / "m.pt"
    torch.save({"state_dict": Payload(marker)}, path)
    with pytest.raises(ModelFileError, match="not a model file saved by save_model"):
        read_model_file(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelFileError):
        read_model_file(path)
    assert not marker.exists()


def test_whole_module_saved_by_torch_save(model, tmp_path):
    """Is torch.save(model) (a pickled nn.Module) refused with a hint to use save_model?"""
    path = tmp_path / "m.pt"
    torch.save(model, path)
    with pytest.raises(ModelFileError, match="save_model"):
        load_model(path)


@pytest.mark.parametrize("contents, words", [
    ({"format": "other"}, "format"),
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": "{",
      "parameter_names": [], "state_dict": {}}, "not valid JSON"),
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": "{}",
      "parameter_names": ["w"], "state_dict": {"v": torch.zeros(1)}}, "parameter_names"),
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": "{}",
      "parameter_names": [], "state_dict": {"v": "text"}}, "named tensors"),
    # Places where weights could ride past the limits, which count the state_dict's dense tensors:
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": "{}", "parameter_names": [],
      "state_dict": {}, "extra": torch.zeros(6_000_000, dtype=torch.float16)}, "expected exactly the keys"),
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": '{"w": "' + "9" * 70_000 + '"}',
      "parameter_names": [], "state_dict": {}}, "hparams are settings, not data"),
    ({"format": model_files.FORMAT, "class_name": "KeypointModel", "hparams_json": "{}", "parameter_names": [],
      "state_dict": {"s": torch.zeros(3, 3).to_sparse()}}, "sparse or nested"),
])
def test_malformed_files(tmp_path, contents, words):
    """Is each malformed structure refused with what is wrong?"""
    path = tmp_path / "m.pt"
    torch.save(contents, path)
    with pytest.raises(ModelFileError, match=words):
        read_model_file(path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04broken"])
def test_unreadable_files(tmp_path, content):
    """Are empty and corrupt files a ModelFileError, not a bare torch error?"""
    path = tmp_path / "m.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a model file"):
        read_model_file(path)


def test_missing_file(tmp_path):
    """Does a missing file say to train and save first?"""
    with pytest.raises(ModelFileError, match="save_model"):
        load_model(tmp_path / "nope.pt")


def test_limits_at_the_boundary(tmp_path):
    """Is 4,999,999 parameters allowed and 5,000,000 not; 19,999,999 bytes allowed and 20,000,000 not?"""
    assert parameter_problem(MAX_PARAMETERS - 1) is None
    assert "5,000,000 parameters, counting buffers; it must have fewer than 5,000,000" in \
        parameter_problem(MAX_PARAMETERS)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"\0" * (MAX_FILE_BYTES - 1))
    big.write_bytes(b"\0" * MAX_FILE_BYTES)
    assert file_size_problem(small) is None and "20.0 MB; it must be under 20 MB" in file_size_problem(big)
