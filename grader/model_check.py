"""
Steps 2 and 3: find the model file, check its size, read it as plain data and
count its parameters and buffers, all before any student code runs. Each
function is one check: it returns what the next one needs, or raises
CheckFailed naming it ("model_file", "plain_data" or "parameters").

Only the instructor's own code runs here: the limits and the file reader of the
trusted exercise_code package (never the submission's). read_model_file uses
torch.load(weights_only=True), which refuses any pickle that would build an
object other than tensors and plain containers, so a payload never runs.
"""
from pathlib import Path

from . import messages
from .errors import CheckFailed
from .trusted import (
    MODEL_ENTRY, ModelFileError, count_saved_parameters, file_size_problem, parameter_problem, read_model_file,
)


def find_model_file(root):
    """
    Step 2: the model file of an unpacked submission, if it is there and under the size limit.

    Inputs:
    - root: The submission folder (holding models/ and exercise_code/)

    Returns:
    - Path of the model file (not read yet)
    """
    path = Path(root) / MODEL_ENTRY
    if not path.is_file():
        found = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.pt"))[:5]
        hint = messages.PT_FILES_FOUND.format(found=", ".join(found)) if found else ""
        raise CheckFailed("model_file", messages.NO_MODEL_FILE.format(hint=hint))
    problem = file_size_problem(path)   # before loading: a huge file is refused unread
    if problem:
        raise CheckFailed("model_file", _for_student(problem, path))
    return path


def read_plain_model(path):
    """
    Step 3a: read the model file as plain data (weights_only: no pickle can run code).

    Returns:
    - The file's contents (see model_files.read_model_file), of class KeypointModel
    """
    try:
        saved = read_model_file(path)
    except ModelFileError as error:
        raise CheckFailed("plain_data", _for_student(str(error), path)) from None
    if saved["class_name"] != "KeypointModel":
        raise CheckFailed("plain_data", messages.NOT_A_KEYPOINT_MODEL.format(class_name=saved["class_name"]))
    return saved


def check_parameters(saved):
    """
    Step 3b: what the parameter limit counts, if it is within the limit.

    Inputs:
    - saved: The file's contents (see read_plain_model)

    Returns:
    - count: The values of every tensor in the file's state_dict, parameters and
      buffers alike (see exercise_code.util.limits), not just those in parameter_names
    """
    count = count_saved_parameters(saved)
    problem = parameter_problem(count)
    if problem:
        raise CheckFailed("parameters", problem)
    return count


def _for_student(message, path):
    """The message with our scratch path replaced by the name the student knows."""
    return message.replace(str(path), MODEL_ENTRY)
