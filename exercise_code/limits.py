"""
The limits every submitted model must keep. One implementation, used by the
student checks, the submission zip builder and the grader.
"""
from pathlib import Path

MAX_PARAMETERS = 5_000_000        # a model must have fewer parameters than this
MAX_FILE_BYTES = 20_000_000       # and its saved file must be smaller than this (20 MB, decimal)


def count_parameters(model):
    """Number of parameters of an nn.Module (what the limit counts)."""
    return sum(p.numel() for p in model.parameters())


def count_saved_parameters(saved):
    """Number of parameters in a model file's contents (from model_files.read_model_file)."""
    return sum(saved["state_dict"][name].numel() for name in saved["parameter_names"])


def parameter_problem(count):
    """None if count is within the limit, else a sentence saying what is wrong and what to do."""
    if count < MAX_PARAMETERS:
        return None
    return (f"The model has {count:,} parameters; it must have fewer than {MAX_PARAMETERS:,}. "
            "Use fewer or narrower layers (the first Linear layer after the convolutions is usually the largest).")


def file_size_problem(path):
    """None if the file at path is under the size limit, else a sentence saying what is wrong."""
    size = Path(path).stat().st_size
    if size < MAX_FILE_BYTES:
        return None
    return (f"The model file {path} is {size / 1e6:.1f} MB; it must be under {MAX_FILE_BYTES / 1e6:.0f} MB. "
            "Make the model smaller.")
