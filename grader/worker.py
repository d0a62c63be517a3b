"""
The worker: runs one submission's KeypointModel on the test images and sends back
its predictions. grader/sandbox.py starts it as

    python -I -B grader/worker.py SPEC_JSON

or, in the jail (grader/jail.py), has the batch's zygote (grader/zygote.py) fork it
and call main() with the same argv.

SPEC_JSON says where the submission and the images are, and which file
descriptors take the stages (a pipe) and the result (a file the grader reads
once this process is gone). The worker never gets the labels or the path of
the test file: only the images, as a uint8 .npy array of shape (N, 96, 96).

This file uses the standard library until it imports the student's code. From
then on nothing in this process can be trusted, so the grader reads one thing
from it, the predictions, and checks and scores them itself. It writes JSON
lines (never a pickle): one {"stage": ...} line to the stage pipe as it enters
each stage (so a timeout can say where it happened), then the result, to the
result file:

    {"ok": true, "shape": [N, 30], "predictions": [N * 30 floats], "timings": {...}}
    {"ok": false, "stage": "import" | "model_file" | "build" | "load" | "predict",
     "error": "ValueError: ...", "traceback": "...", "out_of_memory": false}

When the spec has "checks", the worker then enters the stage "checks" and runs the
trusted checks' probes (grader/check_worker.py) on the grader's inputs, in this
same process: one start of Python and torch per submission instead of two (none, in
the jail: there this process is a fork of the batch's zygote, grader/zygote.py).
sandbox.py takes the result as soon as it is written, and the checks' time starts
then: it is never time for the model.
"""
import json
import os
import sys
import time
import traceback

STARTED = time.perf_counter()
TRACEBACK_CHARS = 4000


def failure(stage, error):
    """The result for an exception raised by the student's code (or ours) at stage."""
    report = traceback.TracebackException.from_exception(error)
    # Our own frames say nothing to the student (and their source is not in the jail).
    report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != __file__])
    text = "".join(report.format())
    message = f"{type(error).__name__}: {error}"
    memory = isinstance(error, MemoryError) or "can't allocate memory" in message or "DefaultCPUAllocator" in message
    return {"ok": False, "stage": stage, "error": message[:TRACEBACK_CHARS],
            "traceback": text[-TRACEBACK_CHARS:], "out_of_memory": memory}


def predict(spec, stages):
    """Import the submission's code, rebuild its model, and predict the images. Returns the result dict."""
    timings, stage = {}, None

    def lap(name):
        timings[name] = round(time.perf_counter() - STARTED - sum(timings.values()), 4)

    def enter(name):
        nonlocal stage
        stage = name
        stages.write(json.dumps({"stage": name}) + "\n")
        stages.flush()

    try:
        enter("startup")
        import numpy as np
        import torch
        torch.set_num_threads(spec["threads"])
        lap("startup_s")
        enter("import")
        # The student's package must be the one `import exercise_code` finds.
        sys.path.insert(0, spec["submission"])
        from exercise_code.networks import KeypointModel
        lap("import_code_s")
        enter("model_file")
        model_file = os.path.join(spec["submission"], spec["model_entry"])
        contents = torch.load(model_file, map_location="cpu", weights_only=True)  # plain data, no code
        enter("build")
        model = KeypointModel(json.loads(contents["hparams_json"]))
        enter("load")
        model.load_state_dict(contents["state_dict"], strict=True)
        model.eval()
        lap("load_s")
        enter("predict")
        images = torch.from_numpy(np.load(spec["images"], allow_pickle=False))   # (N, 96, 96) uint8
        images = images.unsqueeze(1).float().div_(255)                         # (N, 1, 96, 96), as the dataset
        outputs, channels_last = [], True
        with torch.inference_mode():
            # As exercise_code.evaluation feeds batches (same layout, same numbers): channels-last,
            # unless the model cannot take it on the first batch (one that .view()s a feature map).
            for number, batch in enumerate(images.split(spec["batch_size"])):
                if channels_last:
                    try:
                        output = model(torch.empty_like(batch, memory_format=torch.channels_last).copy_(batch))
                    except RuntimeError:
                        if number > 0:
                            raise
                        channels_last = False
                if not channels_last:
                    output = model(batch)
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"forward returned a {type(output).__name__}, not a tensor")
                outputs.append(output.detach().float().cpu())                 # float32, as evaluate_model
        predictions = torch.cat(outputs)
        lap("predict_s")
    except BaseException as error:  # SystemExit and KeyboardInterrupt from student code included
        return failure(stage, error)
    return {"ok": True, "shape": list(predictions.shape), "predictions": predictions.flatten().tolist(),
            "timings": timings}


def run_checks(checks):
    """The trusted checks' probes (grader/check_worker.py, copied beside this file), into checks["result"]."""
    import importlib.util

    found = importlib.util.spec_from_file_location("check_worker", checks["worker"])
    check_worker = importlib.util.module_from_spec(found)
    found.loader.exec_module(check_worker)
    with open(checks["result"], "w") as out:
        check_worker.run_probes(checks, out)


def main(argv):
    spec = json.loads(argv[1])
    stages = os.fdopen(spec["stage_fd"], "w")
    result = predict(spec, stages)
    with os.fdopen(spec["result_fd"], "w") as out:
        out.write(json.dumps(result) + "\n")
    if spec.get("checks"):   # the result is sent: whatever the checks do now cannot change it
        stages.write(json.dumps({"stage": "checks"}) + "\n")
        stages.flush()
        run_checks(spec["checks"])
    os._exit(0)  # skip atexit handlers and threads the student's code may have left behind


if __name__ == "__main__":
    main(sys.argv)
