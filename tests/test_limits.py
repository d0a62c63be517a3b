"""The parameter limit's rule: every value of every state_dict tensor counts, except integer counters."""
import pytest
import torch
from torch import nn

from exercise_code.util.limits import (
    MAX_PARAMETERS, count_limited_values, count_parameters, count_saved_parameters, parameter_problem,
)
from exercise_code.util.model_files import read_model_file, save_model


class Split(nn.Module):
    """`count` counted values: 1,000 in a parameter, the rest in a buffer, plus an integer counter."""

    def __init__(self, count):
        super().__init__()
        self.hparams = {}
        self.w = nn.Parameter(torch.empty(1_000, dtype=torch.float16))
        self.register_buffer("table", torch.empty(count - 1_000, dtype=torch.float16))
        self.register_buffer("steps", torch.tensor(0))   # like num_batches_tracked: not counted


def test_batchnorm_running_stats_count_but_not_the_counter():
    """Does BatchNorm2d(8) count 32 values: weight, bias, running mean and variance, but not num_batches_tracked?"""
    bn = nn.BatchNorm2d(8)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert count_parameters(bn) == 4 * 8
    assert sum(p.numel() for p in bn.parameters()) == 2 * 8   # what the old rule counted


@pytest.mark.parametrize("tensor, counted", [
    (torch.tensor(7), 0),                                   # an int64 scalar, as num_batches_tracked
    (torch.tensor([True]), 0),                              # a one-element flag
    (torch.zeros(1, dtype=torch.uint8), 0),
    (torch.zeros(0, dtype=torch.int64), 0),
    (torch.zeros(2, dtype=torch.int64), 2),                 # two integers are data, not a counter
    (torch.tensor(1.5), 1),                                 # a float scalar is a weight
    (torch.empty(6_000_000, dtype=torch.int8), 6_000_000),  # quantized weights smuggled as int8
    (torch.empty(3, 4, dtype=torch.uint8), 12),
])
def test_which_tensors_count(tensor, counted):
    """Is every value counted, whatever the dtype, except integer or bool tensors of at most one value?"""
    assert count_limited_values([tensor]) == counted


def test_a_big_int8_buffer_counts():
    """Is a model hiding 6,000,000 int8 values in a buffer over the limit?"""
    model = nn.Linear(2, 2)
    model.register_buffer("codes", torch.empty(6_000_000, dtype=torch.int8))
    assert count_parameters(model) == 6 + 6_000_000
    assert "6,000,006 parameters, counting buffers" in parameter_problem(count_parameters(model))


def test_a_view_counts_its_whole_storage(tmp_path):
    """Does a one-element view of a 6,000,000-value storage count them all (torch.save writes the whole storage)?"""
    hidden = torch.empty(6_000_000, dtype=torch.int8)[:1]   # passes for an "integer counter" by its shape
    path = tmp_path / "m.pt"
    torch.save({"state_dict": {"steps": hidden}}, path)
    assert count_limited_values([hidden]) == 6_000_000
    assert count_saved_parameters(torch.load(path, weights_only=True)) == 6_000_000


def test_a_buffer_that_is_not_saved_does_not_count():
    """Is a buffer registered with persistent=False (recomputed, never saved) left out, as the message says?"""
    model = nn.Linear(2, 2)
    model.register_buffer("grid", torch.empty(6_000_000), persistent=False)
    assert count_parameters(model) == 6


@pytest.mark.parametrize("count, allowed", [(MAX_PARAMETERS - 1, True), (MAX_PARAMETERS, False)])
def test_limit_is_exact_for_a_model_and_its_file(tmp_path, count, allowed):
    """Do 4,999,999 counted values (mostly in a buffer) pass and 5,000,000 fail, the same for model and file?"""
    model = Split(count)
    saved = read_model_file(save_model(model, tmp_path / "m.pt"))
    assert count_parameters(model) == count_saved_parameters(saved) == count
    assert (parameter_problem(count) is None) == allowed


def test_message_says_what_counts_and_what_to_do():
    """Does the refusal name buffers, BatchNorm's statistics, the counter that is exempt and the way out?"""
    message = parameter_problem(MAX_PARAMETERS)
    for words in ("5,000,000 parameters, counting buffers; it must have fewer than 5,000,000",
                  "BatchNorm's running mean and variance", "num_batches_tracked do not",
                  "fewer or narrower layers", "persistent=False"):
        assert words in message
