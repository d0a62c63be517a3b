"""
Every sentence the grader writes for students, in one place.

Templates are filled with str.format by the check that fails or passes:

    raise CheckFailed("unpack", messages.NOT_A_ZIP.format(name=source.name, start=start))

The limits' own sentences (the model file's size, the parameter count) come from
the pack's exercise_code.util.limits, which the students' notebooks use too.
Tests match on these words: change them here, and in the tests, together.
"""
from .trusted import MAX_FILE_BYTES, MAX_PARAMETERS, MODEL_ENTRY

# The checks, in the order they run: name -> the title the student reads (Gradescope's test name).
TITLES = {
    "unpack": "The submission unpacks safely",
    "model_file": f"{MODEL_ENTRY} is there and under {MAX_FILE_BYTES / 1e6:.0f} MB",
    "plain_data": "The model file holds plain weights (it loads without running code)",
    "parameters": f"The model has fewer than {MAX_PARAMETERS:,} parameters, counting buffers",
    "code": "Your exercise_code builds KeypointModel(hparams) and loads the weights",
    "predictions": "Predictions for every test image: in time, in memory, of the right shape, finite",
    "score": "Score on the hidden test set",
}
NOT_RUN = "Not run: an earlier check failed."
NOT_SCORED = "Not scored: an earlier check failed."
NOT_SCORED_SUMMARY = "Not scored. {message}"
GRADER_FAILED = ("The grader itself failed on this submission ({reason}). This is not your fault: "
                 "tell your instructor; it will be graded again.")

# What a check that passed says.
UNPACKED = "Unpacked {count} files."
MODEL_FILE_SIZE = MODEL_ENTRY + " is {mb:.2f} MB."
PLAIN_DATA = "Read as plain data (torch.load with weights_only=True): a KeypointModel."
PARAMETERS = "{count:,} parameters."
CODE_RAN = "Imported your exercise_code, built KeypointModel(hparams) and loaded the weights."
PREDICTED = "Predicted all {n} test images in {seconds:.1f} s; shape {shape}, all finite."
SCORE = ("Score 1/(2*MSE) = {raw_score:.2f} on {n} hidden test faces (MSE {mse:.5f} in unit coordinates): "
         "{points:g} of {max_points:g} points ({rule}).")
KEYPOINT_TABLE = ("\n\nThe error of each keypoint, worst first: the root mean squared distance between your point "
                  "and the true one, in pixels of the 96x96 face, over all {n} hidden faces:\n{rows}")
KEYPOINT_ROW = "  {name:<28}{error:6.1f} px"

# Unpacking (grader/unpack.py).
HOW_TO_BUILD = "Build your zip with exercise_code.util.submission.create_submission_zip() and submit that file."
NOT_A_ZIP = "{name} is not a zip file (it starts with {start!r}). " + HOW_TO_BUILD
DAMAGED_ZIP = "{name} is a damaged zip ({error}). " + HOW_TO_BUILD
ABSOLUTE_PATH = "The entry {name!r} has an absolute path. " + HOW_TO_BUILD
OUTSIDE = "The entry {name!r} points outside the submission ('..'). " + HOW_TO_BUILD
EMPTY_ZIP = f"The zip is empty: it must hold {MODEL_ENTRY} and exercise_code/. " + HOW_TO_BUILD
ENTRY_SYMLINK = "The entry {name!r} is a symlink; submissions may only hold plain files. " + HOW_TO_BUILD
ENTRY_NOT_PLAIN = "The entry {name!r} is not a plain file. " + HOW_TO_BUILD
ENCRYPTED = "The entry {name!r} is password-protected; submit an unencrypted zip."
TWICE = "The entry {name!r} appears twice in the zip. " + HOW_TO_BUILD
ZIP_BOMB = ("The entry {name!r} expands from {packed:,} to {size:,} bytes, more than {ratio}x: this looks like "
            "a zip bomb. " + HOW_TO_BUILD)
FILE_SYMLINK = "{path} is a symlink; submissions may only hold plain files."
FILE_NOT_PLAIN = "{path} is not a plain file."
TOO_MANY_FILES = "The submission holds more than {limit:,} files. " + HOW_TO_BUILD
TOO_LARGE = "The submission unpacks to more than {limit_mb:.0f} MB ({mb:,.0f} MB). " + HOW_TO_BUILD
NO_FILES = f"The submission holds no files: it must hold {MODEL_ENTRY} and exercise_code/. " + HOW_TO_BUILD
FOLDER_CLASH = "{path} and another entry clash (a file where a folder should be)."
FILE_CLASH = "{path} clashes with another entry of the submission."
LYING_SIZE = ("{path} holds more data than its size says ({size:,} bytes): this looks like a zip bomb. "
              + HOW_TO_BUILD)

# The model file (grader/model_check.py).
HOW_TO_SAVE = ("Save your model with exercise_code.util.model_files.save_model(model) and build the zip "
               "with create_submission_zip().")
NO_MODEL_FILE = "Your submission has no " + MODEL_ENTRY + ".{hint} " + HOW_TO_SAVE
PT_FILES_FOUND = " The .pt files in it: {found}."
NOT_A_KEYPOINT_MODEL = (MODEL_ENTRY + " holds a {class_name}, not a KeypointModel. The grader rebuilds "
                        "exercise_code.networks.KeypointModel. " + HOW_TO_SAVE)

# The student's code, run by the worker (grader/pipeline.py reads what grader/worker.py sent back).
NO_NETWORKS = ("Your submission has no exercise_code/networks/ folder, so the grader cannot build your "
               "KeypointModel. Build the zip with create_submission_zip().")
DOING = {"import": "importing your exercise_code", "model_file": "reading your model file",
         "build": "building KeypointModel(hparams)", "load": "loading your weights into the model",
         "predict": "predicting the {n} test images"}
DOING_ELSE = "running your exercise_code"   # an odd stage: the student's code wrote it
TIMED_OUT = ("Your code did not finish within the time limit of {timeout_s:g} s: it was still {doing}. The grader "
             "runs your model on a CPU with {threads} thread(s). Make sure nothing waits for input, the network or "
             "a file, that no training runs at import, and that the model is small enough.")
STOPPED = "Your code stopped while {doing}, without sending predictions ({how})."
ENDED_BY = {"SIGXCPU": "it used more than {cpu_s} s of CPU time",
            "SIGKILL": "it was killed, most likely for using too much memory (limit {memory_mb:,} MB) or CPU time"}
ENDED_BY_OTHER = "it was ended by {signal}"
EXITED = "it exited with code {code}; does your code call sys.exit or os._exit?"
OUT_OF_MEMORY = ("Your code ran out of memory while {doing} (limit {memory_mb:,} MB). Use a smaller model, and do "
                 "not keep large tensors or lists of outputs around.\n\n{error}")
WEIGHTS_DO_NOT_FIT = ("The weights in your model file do not fit the KeypointModel your exercise_code builds from "
                      "the saved hparams. Did you change the model code after saving? Train and save again with the "
                      "code you submit.\n\n{error}")
RAISED = "Your code raised {first_line} while {doing}. {hint}\n\nThe end of the traceback:\n{traceback}"
HINTS = {
    "import": "Run `from exercise_code.networks import KeypointModel` in a fresh Python in your workspace to "
              "see the same error, fix it, and submit again.",
    "model_file": "Save your model again with save_model(model).",
    "build": "The grader builds KeypointModel(hparams) with the hparams saved in your model file. Check that "
             "your __init__ works with exactly those hparams.",
    "predict": "Check that forward works on a batch of shape (N, 1, 96, 96) with values in [0, 1], on the CPU, "
               "in eval mode.",
}
UNREADABLE = ("The grader could not read your model's predictions. Does your code write to file descriptors it "
              "did not open?")
WRONG_SHAPE = ("Your model returned predictions of shape {shape} for {n} test images; KeypointModel.forward must "
               "return shape (N, 30) (or (N, 15, 2)): x and y of each of the 15 keypoints, for each image of the "
               "batch.")
NOT_FINITE = ("Your predictions contain {nan} NaN and {inf} infinite values (of {total}). Check for divisions by "
              "zero, log or sqrt of negative numbers, and weights that became NaN in training.")
STDERR_FAILED = "\n\nWhat your code printed to stderr (the end):\n{text}"
STDERR_PASSED = "\n\nYour code printed to stderr (that is fine; shown for your information):\n{text}"
