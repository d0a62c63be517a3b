"""
The limits every submitted model must keep. One implementation, used by the
student checks, the submission zip builder and the grader.

What the parameter limit counts: every value of every tensor in the model's
state_dict, parameters and buffers alike. So BatchNorm's running mean and
variance count; integer counters such as BatchNorm's num_batches_tracked (an
integer or bool tensor with at most one value) do not. Buffers count because a
buffer is saved and loaded like a weight: a large one could hold weights the
parameter count would never see. For the same reason a large integer tensor
(int8, uint8, ...) counts like a float one. A buffer registered with
persistent=False is not in the state_dict, not saved, and so not counted.
"""
from pathlib import Path

import torch

MAX_PARAMETERS = 5_000_000        # a model must have fewer counted values than this
MAX_FILE_BYTES = 20_000_000       # and its saved file must be smaller than this (20 MB, decimal)


def count_limited_values(tensors):
    """
    Number of values the parameter limit counts in some tensors.

    Inputs:
    - tensors: Iterable of tensors, e.g. state_dict.values(), of any shape and dtype

    Returns:
    - count: Int; the values of every tensor, except integer or bool tensors of at
      most one value (bookkeeping such as num_batches_tracked)
    """
    count = 0
    for tensor in tensors:
        values = _values_held(tensor)
        integer = not (tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.is_quantized)
        if integer and values <= 1:
            continue  # a counter or flag, not a weight
        count += values
    return count


def count_parameters(model):
    """Number of values of an nn.Module that the limit counts: its parameters and buffers (see above)."""
    return count_limited_values(model.state_dict().values())


def count_saved_parameters(saved):
    """Number of values the limit counts in a model file's contents (from model_files.read_model_file)."""
    return count_limited_values(saved["state_dict"].values())


def parameter_problem(count):
    """None if count is within the limit, else a sentence saying what is wrong and what to do."""
    if count < MAX_PARAMETERS:
        return None
    return (f"The model has {count:,} parameters, counting buffers; it must have fewer than {MAX_PARAMETERS:,}. "
            "Parameters and buffers (e.g. BatchNorm's running mean and variance) count; integer counters such as "
            "num_batches_tracked do not. Use fewer or narrower layers (the first Linear layer after the "
            "convolutions is usually the largest). A buffer your code can recompute need not be saved: register "
            "it with register_buffer(name, tensor, persistent=False).")


def file_size_problem(path):
    """None if the file at path is under the size limit, else a sentence saying what is wrong."""
    size = Path(path).stat().st_size
    if size < MAX_FILE_BYTES:
        return None
    return (f"The model file {path} is {size / 1e6:.1f} MB; it must be under {MAX_FILE_BYTES / 1e6:.0f} MB. "
            "Make the model smaller.")


def _values_held(tensor):
    """How many values a tensor holds: its elements, or its whole storage if that is larger."""
    if tensor.layout != torch.strided or tensor.is_nested:
        return tensor.numel()  # sparse or nested: save_model never writes these
    # torch.save writes a view's whole storage, so a 1-element view of a big storage carries all of it.
    return max(tensor.numel(), tensor.untyped_storage().nbytes() // tensor.element_size())
