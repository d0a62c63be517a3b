"""
The check worker: calls a submission's functions on inputs the instructor chose
and sends back what they returned. grader/trusted_checks.py starts it in the
jail (grader/jail.py) as

    python -I -B grader/check_worker.py SPEC_JSON

SPEC_JSON names the submission folder (holding exercise_code/ and models/), the
inputs (an .npz of plain arrays), a folder of small CSVs for the dataset, the
probes to run and the file to write. For each probe it writes one JSON line:

    {"probe": "dataset", "ok": true, "outputs": {name: value, ...}}
    {"probe": "dataset", "ok": false, "error": "NotImplementedError: ..."}

where a value is JSON: numbers, strings, lists, or an array as
{"dtype": "float32", "shape": [...], "values": [...]}. These are raw outputs,
never a verdict: the grader compares them with what its own reference code
computes. Once the student's code is imported, nothing here can be trusted,
which is why nothing here decides anything.

grader/worker.py runs the same probes (run_probes) after it has sent its
predictions, when the grader asks it to: one process, one import of torch, for
both the model and the checks of a submission.
"""
import json
import os
import sys
import traceback

ERROR_CHARS = 3000


def array(value):
    """A tensor or array as JSON (the exact values, so the grader can compare them)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        dtype = str(value.dtype).removeprefix("torch.")
        value = value.to(torch.float64 if value.is_floating_point() else torch.int64).numpy()
    else:
        value = np.asarray(value)
        dtype = str(value.dtype)
        value = value.astype(np.float64) if value.dtype.kind in "fc" else value
    return {"type": "array", "dtype": dtype, "shape": list(value.shape), "values": value.ravel().tolist()}


def describe(value):
    """Anything a student's function returned, as JSON: arrays exactly, other things by type."""
    import numpy as np
    import torch

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return array(value)
    if isinstance(value, dict):
        return {"type": "dict", "items": {str(k): describe(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"type": type(value).__name__, "items": [describe(v) for v in value]}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return {"type": type(value).__name__, "value": value}
    return {"type": type(value).__name__}


def probe_dataset(inputs, spec):
    """FacialKeypointsDataset on the instructor's small CSVs: samples, copies, the transform's view."""
    import torch
    from exercise_code.data import FacialKeypointsDataset

    train = FacialKeypointsDataset(spec["data_dir"], "train")
    indices = [int(i) for i in inputs["dataset_indices"]]
    outputs = {"length": len(train), "samples": [describe(train[i]) for i in indices]}
    changed = train[indices[1]]                  # a sample changed by its caller...
    for value in changed.values() if isinstance(changed, dict) else []:
        if isinstance(value, torch.Tensor):
            value.zero_()
    outputs["after_change"] = describe(train[indices[1]])   # ...must not change the dataset
    seen = []

    def shift_right(sample):   # the transform: what it is given, and a known change in pixels
        seen.append(describe(sample))
        return {"image": sample["image"], "keypoints": sample["keypoints"] + torch.tensor([1.0, 0.0])}

    shifted = FacialKeypointsDataset(spec["data_dir"], "train", transform=shift_right)[indices[2]]
    outputs.update(transform_saw=seen, transformed=describe(shifted))
    val = FacialKeypointsDataset(spec["data_dir"], "val")
    outputs.update(val_length=len(val), val_sample=describe(val[1]))
    return outputs


def probe_model(inputs, spec):
    """The submitted KeypointModel, rebuilt from its file, on a batch and on one image."""
    import torch
    from exercise_code.networks import KeypointModel

    contents = torch.load(os.path.join(spec["submission"], spec["model_entry"]), map_location="cpu",
                          weights_only=True)   # plain data, no code
    model = KeypointModel(json.loads(contents["hparams_json"]))
    model.load_state_dict(contents["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        batch = model(torch.from_numpy(inputs["model_batch"]))     # (4, 1, 96, 96)
        single = model(torch.from_numpy(inputs["model_single"]))   # (1, 96, 96)
    return {"batch": describe(batch), "single": describe(single)}


def probe_spatial_batchnorm_forward(inputs, spec):
    """spatial_batchnorm_forward in train mode, then in test mode after warm-up passes."""
    from exercise_code.layers import spatial_batchnorm_forward

    gamma, beta, eps, momentum = inputs["bn_gamma"], inputs["bn_beta"], float(inputs["eps"]), float(inputs["momentum"])
    train_out, _ = spatial_batchnorm_forward(inputs["bn_x"].copy(), gamma.copy(), beta.copy(),
                                             {"mode": "train", "eps": eps})
    bn_param = {"mode": "train", "eps": eps, "momentum": momentum}
    for batch in inputs["bn_warmup"]:
        spatial_batchnorm_forward(batch.copy(), gamma.copy(), beta.copy(), bn_param)
    bn_param["mode"] = "test"
    test_out, _ = spatial_batchnorm_forward(inputs["bn_test_x"].copy(), gamma.copy(), beta.copy(), bn_param)
    return {"train_out": describe(train_out), "test_out": describe(test_out)}


def probe_spatial_batchnorm_backward(inputs, spec):
    """spatial_batchnorm_backward on the cache of the student's own forward pass."""
    from exercise_code.layers import spatial_batchnorm_backward, spatial_batchnorm_forward

    _, cache = spatial_batchnorm_forward(inputs["grad_x"].copy(), inputs["grad_gamma"].copy(),
                                         inputs["grad_beta"].copy(), {"mode": "train", "eps": float(inputs["eps"])})
    return {"grads": describe(spatial_batchnorm_backward(inputs["grad_dout"].copy(), cache))}


PROBES = {"dataset": probe_dataset, "model": probe_model,
          "spatial_batchnorm_forward": probe_spatial_batchnorm_forward,
          "spatial_batchnorm_backward": probe_spatial_batchnorm_backward}


def run_probes(spec, out):
    """Run the probes spec names, writing one JSON line per probe to the open text file out."""
    import numpy as np

    with np.load(spec["inputs"], allow_pickle=False) as data:
        inputs = dict(data)
    for name in spec["probes"]:
        try:
            line = {"probe": name, "ok": True, "outputs": PROBES[name](inputs, spec)}
        except BaseException as error:   # SystemExit and KeyboardInterrupt from student code included
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            tb = "".join(traceback.format_exception(error))
            line = {"probe": name, "ok": False, "error": text[:ERROR_CHARS], "traceback": tb[-ERROR_CHARS:]}
        out.write(json.dumps(line) + "\n")
        out.flush()


def main(argv):
    spec = json.loads(argv[1])
    out = open(spec["result"], "w")
    sys.path.insert(0, spec["submission"])   # the submission's exercise_code is the one imported
    run_probes(spec, out)
    out.close()
    os._exit(0)   # skip atexit handlers and threads the student's code may have left behind


if __name__ == "__main__":
    main(sys.argv)
