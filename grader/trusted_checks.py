"""
The graded checks of the notebooks, decided by trusted code.

A graded cell that runs in the student's kernel proves nothing: code earlier in
the same kernel can make any later cell pass (an input transformer that swallows
every failure is enough). So the points of these cells come from here instead:

    cell (grade_id)                      probe in the jail          compared with
    dataset_checks                       FacialKeypointsDataset     the CSV's own arrays
    model_checks                         the saved KeypointModel    the file's limits, output shapes
    spatial_batchnorm_forward_checks     spatial_batchnorm_forward  the reference layers.py
    spatial_batchnorm_backward_checks    ..._backward               the reference layers.py

Probes makes fresh random inputs, the student's functions run on them in the
jail (grader/check_worker.py), only raw outputs come back, and Probes.compare
checks them here against what the instructor's code computes. A cell earns its
points when every check of it passes, as in nbgrader, where any failed assert
costs the cell. The probes run in the model's worker when the grader is asked
for the checks with the model (grader.api.grade(checks=...)), and in a jailed
process of their own by run_checks, for what that worker did not bring back.
"""
import json
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import jail
from .errors import CheckFailed
from .model_check import check_parameters, find_model_file, read_plain_model
from .trusted import KEYPOINT_COLUMNS, MODEL_ENTRY, pixels_to_unit, read_keypoints_csv, reference_layers, rel_error
from .unpack import find_submission_root, unpack

WORKER = Path(__file__).with_name("check_worker.py")
CELLS = {"dataset_checks": "dataset", "model_checks": "model",
         "spatial_batchnorm_forward_checks": "spatial_batchnorm_forward",
         "spatial_batchnorm_backward_checks": "spatial_batchnorm_backward"}   # grade_id -> probe
LIMITS = jail.Limits(timeout_s=90, memory_mb=4096, threads=1)
RESULT_BYTES = 32 * 2 ** 20          # more than any honest probe writes
EPS, MOMENTUM, WARMUP_PASSES = 1e-5, 0.9, 50
FORWARD_LIMIT, GRADIENT_LIMIT = 1e-6, 1e-6   # as the students' own checks (exercise_code/checks)
TRAIN_ROWS, VAL_ROWS = 8, 4
PIXEL_TEXT = [str(value) for value in range(256)]   # a pixel's text in a CSV's Image column (str() of each is slow)


@dataclass
class CheckResult:
    """One graded cell: whether every check passed, and one line per check for the student."""
    passed: bool
    lines: list = field(default_factory=list)

    def text(self):
        verdict = "All checks passed." if self.passed else "Not every check passed: this cell earns no points."
        return "\n".join(["The course grader ran your code on its own inputs:", *self.lines, verdict]) + "\n"


class Fail(Exception):
    """A check that failed; the message says what was found and what was expected."""


@dataclass
class Probes:
    """
    One run of the probes of some cells: fresh inputs, written to a folder the jail may
    write, and what our own code made of them, to compare the probes' outputs with.

    - cells: The grade_ids (keys of CELLS)
    - folder: Holds inputs.npz, data/ (the dataset's CSVs) and result.jsonl (the probes' lines)
    - inputs, data: As make_inputs returns them
    """
    cells: list
    folder: Path
    inputs: dict
    data: dict

    @classmethod
    def make(cls, cells, folder):
        """Probes for cells (those not in CELLS are left out), with new random inputs in folder (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True)
        rng = np.random.default_rng(secrets.randbits(64))   # new inputs every time: no answer can be stored
        return cls([cell for cell in cells if cell in CELLS], folder, *make_inputs(rng, folder))

    def spec(self):
        """What the worker needs (grader/check_worker.py, run_probes), but the submission's place."""
        return {"inputs": str(self.folder / "inputs.npz"), "data_dir": str(self.folder / "data"),
                "probes": [CELLS[cell] for cell in self.cells], "result": str(self.folder / "result.jsonl")}

    def lines(self):
        """{probe: the worker's line for it} of the probes it finished, from result.jsonl (the first line of each)."""
        found, probes = {}, {CELLS[cell] for cell in self.cells}
        for line in _read_lines(self.folder / "result.jsonl"):
            if line.get("probe") in probes:
                found.setdefault(line["probe"], line)
        return found

    def after_model(self, submission, timeout_s, sent):
        """
        {grade_id: CheckResult} of the probes the model's worker (grader/worker.py) ran after
        sending its result (sent: whether it did), for the submission folder they ran on. The first
        it did not finish hung or crashed it, and fails; those after it are left out (run them with
        run_checks), as are all of them when it never sent its result (it never started them).
        """
        lines = self.lines()
        done = [cell for cell in self.cells if CELLS[cell] in lines]
        if sent and len(done) < len(self.cells):
            done.append(next(cell for cell in self.cells if cell not in done))
        return self.compare(lines, submission, timeout_s, done)

    def compare(self, lines, submission, timeout_s, cells=None):
        """
        {grade_id: CheckResult} of cells (default: all of them), from lines {probe: line} (a probe
        missing from lines never ended: its cell fails), for the submission folder they ran on.
        """
        return {cell: _compare(cell, lines.get(CELLS[cell]), submission, self.inputs, self.data, timeout_s)
                for cell in (self.cells if cells is None else cells)}


def run_checks(submission, cells, *, isolation, scratch=None, limits=LIMITS):
    """
    Run the trusted checks of some graded cells on one submission.

    Inputs:
    - submission: Folder holding the submission's exercise_code/ and models/ (checked and copied first,
      as grader/unpack.py copies any submission: no links, no special files, readable by the jail)
    - cells: grade_ids of the cells to check (those not in CELLS are left out)
    - isolation: "jail", or "none" only when asked for by name
    - scratch: Where to make the run's temporary folder (default: the system's)
    - limits: jail.Limits of each run of the check worker

    Returns:
    - Dict grade_id -> CheckResult
    """
    cells = [cell for cell in cells if cell in CELLS]
    if not cells:
        return {}
    if isolation not in ("jail", "none"):
        raise ValueError(f"the trusted checks run in the jail, or without it when asked for by name (not {isolation!r})")
    with tempfile.TemporaryDirectory(prefix="checks-", dir=scratch) as folder:
        try:
            unpack(submission, Path(folder) / "submission")
        except CheckFailed as error:
            return {cell: CheckResult(passed=False, lines=[f"FAIL {error}"]) for cell in cells}
        submission = find_submission_root(Path(folder) / "submission")
        probes = Probes.make(cells, Path(folder) / "work")
        return probes.compare(_probe(submission, probes, isolation, limits), submission, limits.timeout_s)


def _compare(cell, report, submission, inputs, data, timeout_s):
    """The CheckResult of one cell, from the worker's line for its probe (None: the probe never ended)."""
    probe = CELLS[cell]
    result = CheckResult(passed=True)
    try:
        if probe == "model":   # the file first: its limits are checked by our code, on the file
            result.lines.append(_check_model_file(submission))
        if report is None:
            raise Fail(f"your code did not finish this check in time ({timeout_s:g} s) or crashed")
        if not report.get("ok"):
            raise Fail(f"your code raised {str(report.get('error', 'an error')).strip()[:1500]}")
        COMPARE[probe](report["outputs"], inputs, data, result.lines)
    except Fail as failure:
        result.passed = False
        result.lines.append(f"FAIL {failure}")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:   # not the promised form
        result.passed = False
        result.lines.append(f"FAIL the outputs of your code could not be read ({type(error).__name__})")
    return result


def make_inputs(rng, work):
    """
    The inputs of every probe, and a small dataset folder, made from rng.

    Inputs:
    - rng: numpy Generator
    - work: Folder the jail may write (it exists); the dataset goes to work/data

    Returns a tuple of:
    - inputs: Dict of arrays, also saved as work/inputs.npz for the worker
    - data: Dict "train"/"val" -> KeypointsData, parsed by our own reader from the CSVs we wrote
    """
    data_dir = work / "data"
    data_dir.mkdir()
    data = {split: _write_csv(rng, data_dir / name, rows)
            for split, name, rows in (("train", "training.csv", TRAIN_ROWS), ("val", "val.csv", VAL_ROWS))}
    c = int(rng.integers(2, 5))
    feature_maps = lambda *shape: rng.uniform(0.5, 2, (c, 1, 1)) * rng.standard_normal(shape) \
        + rng.uniform(-2, 2, (c, 1, 1))   # noqa: E731 (a mean and scale of its own per channel)
    inputs = {
        "dataset_indices": np.array(sorted(rng.choice(TRAIN_ROWS, 3, replace=False))),
        "model_batch": rng.random((4, 1, 96, 96), dtype=np.float32),
        "model_single": rng.random((1, 96, 96), dtype=np.float32),
        "bn_x": feature_maps(4, c, 5, 6), "bn_gamma": rng.uniform(1, 5, c), "bn_beta": rng.uniform(-5, 5, c),
        "bn_warmup": feature_maps(WARMUP_PASSES, 4, c, 5, 6), "bn_test_x": feature_maps(4, c, 5, 6),
        "grad_x": feature_maps(2, c, 4, 5), "grad_gamma": rng.standard_normal(c), "grad_beta": rng.standard_normal(c),
        "grad_dout": rng.standard_normal((2, c, 4, 5)), "eps": np.float64(EPS), "momentum": np.float64(MOMENTUM),
    }
    np.savez(work / "inputs.npz", **inputs)
    return inputs, data


def _write_csv(rng, path, rows):
    """A keypoints CSV of random faces; returns what our own reader makes of it."""
    keypoints = rng.uniform(5, 90, (rows, 30))
    images = rng.integers(0, 256, (rows, 96 * 96))
    lines = [",".join(KEYPOINT_COLUMNS + ["Image"])]
    lines += [",".join(f"{v:.3f}" for v in k) + "," + " ".join([PIXEL_TEXT[v] for v in image])
              for k, image in zip(keypoints, images.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return read_keypoints_csv(path)


def _probe(submission, probes, isolation, limits):
    """
    Run the probes in the check worker, a fresh jailed process at a time: if one
    hangs or crashes, it alone fails and the rest run again in a new process.

    Returns:
    - Dict probe -> the worker's line for it ({"ok": ..., "outputs" or "error": ...}); missing if it never ended
    """
    done, todo, work = {}, probes.spec()["probes"], probes.folder
    while todo:
        spec = {**probes.spec(), "probes": todo, "submission": str(submission), "model_entry": MODEL_ENTRY}
        Path(spec["result"]).unlink(missing_ok=True)
        command = [sys.executable, "-I", "-B", str(WORKER), json.dumps(spec)]
        run = _run(command, submission, work, isolation, limits)
        if run is not None and "bwrap:" in run.stderr[-2000:]:   # the jail itself failed: our problem, not theirs
            raise RuntimeError(f"the check worker's jail failed: {run.stderr[-500:]}")
        for probe, line in probes.lines().items():
            if probe in todo and probe not in done:
                done[probe] = line
        finished = [p for p in todo if p in done]
        if len(finished) < len(todo):   # the next probe hung or crashed: it fails, the others go on
            done[todo[len(finished)]] = None
        todo = [p for p in todo if p not in done]
    return {probe: line for probe, line in done.items() if line is not None}


def _run(command, submission, work, isolation, limits):
    """Run the check worker once; its CompletedProcess (text), or None if it timed out."""
    try:
        if isolation == "jail":
            uid = jail.new_uid()
            jail.give_to(work, uid)
            return jail.run_jailed(command, limits=limits, chdir=work, read_only=[submission, WORKER],
                                   writable=[work], uid=uid, capture_output=True, text=True, errors="replace")
        # Isolation "none", asked for by name: the limits, without the jail.
        return subprocess.run(command, cwd=work, capture_output=True, text=True, errors="replace",
                              timeout=limits.timeout_s, stdin=subprocess.DEVNULL,
                              env={**jail.BASE_ENV, "HOME": str(work), "TMPDIR": str(work)},
                              preexec_fn=lambda: jail.apply_limits(limits))
    except subprocess.TimeoutExpired:
        return None


def _read_lines(path):
    """The worker's JSON lines (broken ones skipped); nothing if it wrote more than RESULT_BYTES."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > RESULT_BYTES:
        return []
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            item = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(item, dict):
            lines.append(item)
    return lines


# --- The comparisons: our reference against what came back. Each appends PASS lines or raises Fail.

def _tensor(value, what, shape, dtype="float32"):
    """A returned value that must be a tensor of this shape and dtype, as a float64 array."""
    if not isinstance(value, dict) or value.get("type") != "array":
        raise Fail(f"{what} should be a tensor, got a {value.get('type') if isinstance(value, dict) else '?'}")
    if tuple(value["shape"]) != tuple(shape):
        raise Fail(f"{what} should have shape {tuple(shape)}, got {tuple(value['shape'])}")
    if dtype and value["dtype"] != dtype:
        raise Fail(f"{what} should be {dtype}, got {value['dtype']}")
    return np.array(value["values"], dtype=np.float64).reshape(shape)


def _sample(value, what):
    """A returned sample: a dict with exactly "image" and "keypoints"; returns (image, keypoints) arrays."""
    if not isinstance(value, dict) or value.get("type") != "dict" or set(value["items"]) != {"image", "keypoints"}:
        raise Fail(f"{what} should be a dict with the keys 'image' and 'keypoints'")
    return (_tensor(value["items"]["image"], f"{what}['image']", (1, 96, 96)),
            _tensor(value["items"]["keypoints"], f"{what}['keypoints']", (15, 2)))


def _expect_sample(value, what, data, index, shift=(0.0, 0.0)):
    image, keypoints = _sample(value, what)
    if not np.allclose(image, data.images[index] / 255.0, atol=1e-6):
        raise Fail(f"{what}['image'] is not face {index} of the CSV as floats in [0, 1] (pixel / 255)")
    expected = pixels_to_unit(data.keypoints[index].astype(np.float64) + np.array(shift))
    if not np.allclose(keypoints, expected, atol=1e-5):
        raise Fail(f"{what}['keypoints'] are not the CSV's keypoints of face {index} in unit coordinates, "
                   "(pixel - 48) / 48" + (", scaled after the transform" if any(shift) else ""))


def _compare_dataset(out, inputs, data, lines):
    train, indices = data["train"], [int(i) for i in inputs["dataset_indices"]]
    if len(out["samples"]) != len(indices):
        raise Fail(f"expected {len(indices)} samples back, got {len(out['samples'])}")
    if out["length"] != len(train.images):
        raise Fail(f"len(dataset) is {out['length']}; the CSV has {len(train.images)} faces")
    for index, sample in zip(indices, out["samples"]):
        _expect_sample(sample, f"dataset[{index}]", train, index)
    lines.append(f"PASS dataset[i] for i in {indices}: the CSV's faces and keypoints, shapes (1, 96, 96) and (15, 2)")
    _expect_sample(out["after_change"], f"dataset[{indices[1]}] after a caller changed its sample in place", train,
                   indices[1])
    lines.append("PASS changing a sample does not change the dataset")
    saw = out["transform_saw"]
    if len(saw) != 1:
        raise Fail(f"the transform should be called once per sample, it was called {len(saw)} times")
    _, keypoints = _sample(saw[0], "the sample the transform got")
    if not np.allclose(keypoints, train.keypoints[indices[2]], atol=1e-4):
        raise Fail("the transform should get the keypoints in pixels (scale them after the transform)")
    _expect_sample(out["transformed"], f"dataset[{indices[2]}] with a transform that adds 1 to x", train,
                   indices[2], shift=(1.0, 0.0))
    lines.append("PASS the transform gets keypoints in pixels, and they are scaled after it")
    if out["val_length"] != len(data["val"].images):
        raise Fail(f"the val split has {out['val_length']} faces; its CSV has {len(data['val'].images)}")
    _expect_sample(out["val_sample"], "the val split's dataset[1]", data["val"], 1)
    lines.append("PASS the val split")


def _check_model_file(submission):
    """The saved model, checked by our own code: there, under 20 MB, plain data, within the parameter limit."""
    try:
        count = check_parameters(read_plain_model(find_model_file(submission)))
    except CheckFailed as error:
        raise Fail(str(error)) from None
    return f"PASS {MODEL_ENTRY}: plain weights, {count:,} parameters (buffers included), under the limits"


def _compare_model(out, inputs, data, lines):
    for name, n in (("batch", 4), ("single", 1)):
        given = "images of shape (4, 1, 96, 96)" if n == 4 else "one image of shape (1, 96, 96)"
        value = _tensor(out[name], f"model({given})", (n, 30), dtype=None)
        if not np.isfinite(value).all():
            raise Fail(f"model({given}) returned NaN or infinite values")
        lines.append(f"PASS model({given}) has shape ({n}, 30)")


def _compare_forward(out, inputs, data, lines):
    ref = reference_layers
    gamma, beta = inputs["bn_gamma"], inputs["bn_beta"]
    expected, _ = ref.spatial_batchnorm_forward(inputs["bn_x"].copy(), gamma, beta, {"mode": "train", "eps": EPS})
    found = _tensor(out["train_out"], "the train-mode output", expected.shape, dtype=None)
    _close(found, expected, "train mode: out", FORWARD_LIMIT, lines)
    bn_param = {"mode": "train", "eps": EPS, "momentum": MOMENTUM}
    for batch in inputs["bn_warmup"]:
        ref.spatial_batchnorm_forward(batch.copy(), gamma, beta, bn_param)
    bn_param["mode"] = "test"
    expected, _ = ref.spatial_batchnorm_forward(inputs["bn_test_x"].copy(), gamma, beta, bn_param)
    found = _tensor(out["test_out"], "the test-mode output", expected.shape, dtype=None)
    _close(found, expected, f"test mode after {WARMUP_PASSES} train passes: out", FORWARD_LIMIT, lines)


def _compare_backward(out, inputs, data, lines):
    ref = reference_layers
    _, cache = ref.spatial_batchnorm_forward(inputs["grad_x"].copy(), inputs["grad_gamma"], inputs["grad_beta"],
                                             {"mode": "train", "eps": EPS})
    expected = ref.spatial_batchnorm_backward(inputs["grad_dout"], cache)
    grads = out["grads"]
    if grads.get("type") not in ("tuple", "list") or len(grads["items"]) != 3:
        raise Fail("spatial_batchnorm_backward should return a tuple (dx, dgamma, dbeta)")
    for name, value, reference in zip(("dx", "dgamma", "dbeta"), grads["items"], expected):
        found = _tensor(value, name, reference.shape, dtype=None)
        relative = rel_error(found, reference)
        if not relative <= GRADIENT_LIMIT:
            raise Fail(f"{name}: relative error {relative:.2g} against the reference (at most {GRADIENT_LIMIT:g})")
        lines.append(f"PASS {name}: relative error {relative:.2g} (at most {GRADIENT_LIMIT:g})")


def _close(found, expected, what, limit, lines):
    error = float(np.abs(found - expected).max())
    if not error <= limit:
        raise Fail(f"{what} differs from the reference by up to {error:.3g} (at most {limit:g})")
    lines.append(f"PASS {what}: max difference {error:.2g} (at most {limit:g})")


COMPARE = {"dataset": _compare_dataset, "model": _compare_model,
           "spatial_batchnorm_forward": _compare_forward, "spatial_batchnorm_backward": _compare_backward}
