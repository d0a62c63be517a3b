"""
Submissions for the grader's tests, built from scenario names.

Each scenario starts from a valid submission (the solved workspace's
exercise_code and a saved small KeypointModel) and breaks one thing.
build_submission(name, ...) writes it and returns its path (a .zip, or a folder).

The valid model is a small KeypointModel trained for a few epochs with the
reference's training loop (solutions/train_reference.py): enough to score well
above 100, in seconds.
"""
import io
import pickle
import shutil
import stat
import zipfile
from pathlib import Path

import torch
from torch import nn

from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip

SMALL = {"channels": [4, 8, 8, 16], "stem": 4, "flip_test": False}
VALID = {"channels": [8, 16, 16, 32], "stem": 8, "flip_test": False}   # 29k parameters
VALID_EPOCHS = 4     # about 17 s on 2 cores, for a validation score of about 420


def trained_model(train_set):
    """
    A small KeypointModel(VALID), trained briefly with the reference recipe's loop and loss.

    Inputs:
    - train_set: FacialKeypointsDataset

    Returns:
    - The model, in eval mode; it scores well above 100
    """
    from solutions import train_reference

    torch.manual_seed(0)
    model = KeypointModel(VALID)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    steps = VALID_EPOCHS * (len(train_set) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    train_reference.fit(model, train_set, optimizer, VALID_EPOCHS, 32, schedule, log=lambda line: None,
                        loss_fn=train_reference.reference_loss)
    return model.eval()


def valid_workspace(root, model):
    """A student's workspace: the solved exercise_code, one notebook and the saved model."""
    import exercise_code
    root = Path(root)
    shutil.copytree(Path(exercise_code.__file__).parent, root / "exercise_code",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "exercise_09").mkdir()
    (root / "exercise_09" / "1_facial_keypoints.ipynb").write_text("{}")
    save_model(model, root / MODEL_ENTRY)
    return root


def patch_forward(workspace, body):
    """Append code to keypoint_nn.py that wraps KeypointModel.forward; `body` sees self, x and `out`."""
    code = "\n\n_honest_forward = KeypointModel.forward\n\n\ndef _forward(self, x):\n" \
           "    out = _honest_forward(self, x)\n" + "".join(f"    {line}\n" for line in body.splitlines()) + \
           "\n\nKeypointModel.forward = _forward\n"
    path = workspace / "exercise_code" / "networks" / "keypoint_nn.py"
    path.write_text(path.read_text() + code)


def zip_folder(folder, zip_path, extra=(), compression=zipfile.ZIP_DEFLATED, prefix=""):
    """Zip every file of folder (plus `extra` (ZipInfo or name, bytes) entries) into zip_path."""
    with zipfile.ZipFile(zip_path, "w", compression=compression) as archive:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            archive.write(path, prefix + path.relative_to(folder).as_posix())
        for info, data in extra:
            archive.writestr(info, data)
    return zip_path


class _Payload:
    """Unpickling this runs code that writes `marker`: the proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('pwned')",))


class _Flat(nn.Module):
    """A 'KeypointModel' that is one flat parameter vector: cheap files of any parameter count."""

    def __init__(self, count, dtype):
        super().__init__()
        self.hparams = {}
        self.w = nn.Parameter(torch.zeros(count, dtype=dtype))


_Flat.__name__ = "KeypointModel"   # the name the file records, so only the size or count can fail

HOARD_VALUES = 6_000_000   # float16: a 12 MB file, under the 20 MB limit, over the parameter limit
HOARD_INIT = ("\n\n_honest_init = KeypointModel.__init__\n\n\ndef _hoarding_init(self, hparams):\n"
              "    _honest_init(self, hparams)\n"
              f"    self.register_buffer('table', torch.zeros({HOARD_VALUES}, dtype=torch.float16))\n"
              "\n\nKeypointModel.__init__ = _hoarding_init\n")


class _Hoarder(KeypointModel):
    """A KeypointModel with few parameters that hides HOARD_VALUES values in a buffer (not in parameter_names)."""

    def __init__(self, hparams):
        super().__init__(hparams)
        self.register_buffer("table", torch.zeros(HOARD_VALUES, dtype=torch.float16))


_Hoarder.__name__ = "KeypointModel"


# Forward-pass misbehaviours: code run inside the wrapped forward (see patch_forward).
FORWARDS = {
    "sleeps_forever": "import time\ntime.sleep(10 ** 6)",
    "memory_hog": "hoard = [torch.ones(64 * 2 ** 20) for _ in range(32)]   # 8 GB, 256 MB at a time",
    "wrong_shape": "return out[:, :28]",
    "nan": "return out * float('nan')",
    "infinity": "return out + float('inf')",
    "not_a_tensor": "return out.tolist()",
    "exits_early": "import os\nos._exit(3)",
    "stderr_chatter": "import sys\nprint('debug: batch of', len(x), file=sys.stderr)\nreturn out",
}

# What the spy scenarios do at import: try to reach the hidden labels, the network
# and the host, report what they got on stderr, and otherwise behave.
SPY_CODE = '''
import json, os, resource, socket, sys, time

def _spy_report(hidden_paths, port):
    found = []
    for path in hidden_paths:
        try:
            with open(path) as f:
                found.append(("open", path, f.readline()[:40]))
        except OSError as error:
            print(f"spy: cannot open {path}: {type(error).__name__}", file=sys.stderr)
    deadline = time.time() + 15
    for here, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(here, d) not in ("/proc", "/sys", "/dev")]
        for name in files:
            if name.endswith((".csv", ".npz", ".npy", ".zip")):
                path = os.path.join(here, name)
                try:
                    with open(path, "rb") as f:   # the CSV's header, or a cache or zip of it
                        head = f.read(1 << 16)
                except OSError:
                    continue
                if any(word in head for word in (b"left_eye_center_x", b"keypoints", b"test.csv")):
                    found.append(("scan", path, ""))
        if time.time() > deadline:
            break
    print(f"spy: found {json.dumps(found)}", file=sys.stderr)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print("spy: network open", file=sys.stderr)
    except OSError as error:
        print(f"spy: network blocked ({type(error).__name__})", file=sys.stderr)
    limits = {name: resource.getrlimit(getattr(resource, name))[0]
              for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NPROC")}
    print(f"spy: uid {os.getuid()} cwd {os.getcwd()} limits {json.dumps(limits)}", file=sys.stderr)
    print(f"spy: environment {json.dumps(dict(os.environ))} argv {json.dumps(sys.argv)}", file=sys.stderr)
    return found
'''


def build_submission(scenario, dest, model, *, spy_targets=(), spy_port=0, marker=None):
    """
    Write the submission of a scenario and return its path.

    Inputs:
    - scenario: A name from SCENARIOS
    - dest: An existing folder: the workspace goes to dest/workspaces/<scenario>,
      the zip to dest/submissions/<scenario>.zip
    - model: The valid model (see trained_model)
    - spy_targets: Paths the spy scenario tries to read (the hidden test file)
    - spy_port: A local TCP port the spy scenario tries to connect to
    - marker: A path the pickle payload would create if it ever ran

    Returns:
    - Path of the .zip (or of the workspace, for valid_folder)
    """
    dest = Path(dest)
    work = valid_workspace(dest / "workspaces" / scenario, model)
    (dest / "submissions").mkdir(exist_ok=True)
    zip_path = dest / "submissions" / f"{scenario}.zip"
    networks = work / "exercise_code" / "networks"

    def refuse_zip(*extra, **kwargs):   # a zip of the valid workspace with extra entries
        return zip_folder(work, zip_path, extra=extra, **kwargs)

    if scenario == "valid" or scenario in FORWARDS:   # built the students' way
        if scenario in FORWARDS:
            patch_forward(work, FORWARDS[scenario])
        return create_submission_zip(model_path=work / MODEL_ENTRY, pack_root=work, out_dir=work).rename(zip_path)
    if scenario == "valid_folder":
        return work
    if scenario == "wrapper_folder":   # the student zipped the whole folder
        return zip_folder(work, zip_path, prefix="my_exercise_09/")
    if scenario == "spy":
        (networks / "spy.py").write_text(SPY_CODE)
        patch_forward(work, f"from .spy import _spy_report\nif not getattr(self, '_spied', False):\n"
                            f"    self._spied = True\n    self._found = _spy_report({[str(p) for p in spy_targets]!r}, "
                            f"{spy_port})\nif self._found:\n    raise RuntimeError('spy found labels')\nreturn out")
        return zip_folder(work, zip_path)
    if scenario == "zip_slip":
        return refuse_zip(("../../evil_slip.py", b"print('slipped')"))
    if scenario == "absolute_path":
        return refuse_zip((str(dest / "evil_absolute.py"), b"print('absolute')"))
    if scenario == "symlink":
        link = zipfile.ZipInfo("exercise_code/hidden.csv")
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        return refuse_zip((link, str(spy_targets[0]) if spy_targets else "/etc/passwd"))
    if scenario == "zip_bomb":
        return refuse_zip(("exercise_09/bomb.ipynb", bytes(30_000_000)))   # 30 MB of zeros deflate to ~30 kB
    if scenario == "not_a_zip":
        zip_path.write_bytes(b"This is not a zip file, just text with a .zip name.\n")
        return zip_path
    if scenario == "empty_zip":
        zipfile.ZipFile(zip_path, "w").close()
        return zip_path
    if scenario == "missing_model":
        (work / MODEL_ENTRY).unlink()
        return zip_folder(work, zip_path)
    if scenario == "model_over_20mb":   # few parameters, but float64: 24 MB
        save_model(_Flat(3_000_000, torch.float64), work / MODEL_ENTRY)
        return zip_folder(work, zip_path, compression=zipfile.ZIP_STORED)   # zeros would look like a bomb
    if scenario == "too_many_parameters":   # float16 keeps the file at 10 MB
        save_model(_Flat(5_000_001, torch.float16), work / MODEL_ENTRY)
        return zip_folder(work, zip_path, compression=zipfile.ZIP_STORED)
    if scenario == "buffer_hoard":   # the student's own KeypointModel keeps a 12 MB table as a buffer
        path = networks / "keypoint_nn.py"
        path.write_text(path.read_text() + HOARD_INIT)   # so without the limit, the weights would load and score
        hoarder = _Hoarder(model.hparams)
        hoarder.load_state_dict(model.state_dict(), strict=False)   # the valid weights, plus the table
        save_model(hoarder, work / MODEL_ENTRY)
        return zip_folder(work, zip_path, compression=zipfile.ZIP_STORED)   # zeros would look like a bomb
    if scenario == "pickle_payload":
        contents = torch.load(work / MODEL_ENTRY, weights_only=True)
        contents["state_dict"]["payload"] = _Payload(marker)
        buffer = io.BytesIO()
        torch.save(contents, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
        (work / MODEL_ENTRY).write_bytes(buffer.getvalue())
        return zip_folder(work, zip_path)
    if scenario == "state_dict_mismatch":   # weights of a model with a block less, hparams of the small one
        save_model(KeypointModel({**SMALL, "channels": [4, 8, 8]}), work / MODEL_ENTRY)
        contents = torch.load(work / MODEL_ENTRY, weights_only=True)
        contents["hparams_json"] = __import__("json").dumps(SMALL)
        torch.save(contents, work / MODEL_ENTRY)
        return zip_folder(work, zip_path)
    if scenario == "syntax_error":
        (networks / "keypoint_nn.py").write_text((networks / "keypoint_nn.py").read_text() + "\ndef broken(:\n")
        return zip_folder(work, zip_path)
    if scenario == "forged_report":   # at import, write the worker's lines itself: a stage before its own
        (networks / "__init__.py").write_text(
            "import json, os, sys\n"
            "spec = json.loads(sys.argv[1])\n"
            "os.write(spec['stage_fd'], b'{\"stage\": \"startup\"}\\n')\n"
            "os.write(spec['result_fd'], b'{\"stage\": \"startup\"}\\n{\"ok\": false, \"stage\": \"startup\", '\n"
            "         b'\"error\": \"forged\", \"timings\": {\"predict_s\": NaN}}\\n')\n"
            "os._exit(0)\n")
        return zip_folder(work, zip_path)
    if scenario == "import_error":
        (networks / "__init__.py").write_text("raise RuntimeError('boom at import')\n")
        return zip_folder(work, zip_path)
    raise ValueError(f"unknown scenario {scenario!r}")


# scenario -> (the check that must fail, words its message must hold); None: full points.
SCENARIOS = {
    "valid": None,
    "valid_folder": None,
    "wrapper_folder": None,
    "stderr_chatter": None,
    "spy": None,
    "pickle_payload": ("plain_data", "is not a model file saved by save_model"),
    "zip_slip": ("unpack", "points outside the submission"),
    "absolute_path": ("unpack", "has an absolute path"),
    "symlink": ("unpack", "is a symlink"),
    "zip_bomb": ("unpack", "looks like a zip bomb"),
    "not_a_zip": ("unpack", "is not a zip file"),
    "empty_zip": ("unpack", "The zip is empty"),
    "missing_model": ("model_file", "Your submission has no models/keypoint_model.pt"),
    "model_over_20mb": ("model_file", "it must be under 20 MB"),
    "too_many_parameters": ("parameters", "The model has 5,000,001 parameters"),
    "buffer_hoard": ("parameters", "parameters, counting buffers; it must have fewer than 5,000,000"),
    "state_dict_mismatch": ("code", "do not fit the KeypointModel"),   # then torch's list of missing keys
    "syntax_error": ("code", "SyntaxError"),
    "import_error": ("code", "RuntimeError: boom at import"),
    "forged_report": ("code", "Your code raised forged while running your exercise_code"),   # not our error
    "sleeps_forever": ("predictions", "did not finish within the time limit"),
    "memory_hog": ("predictions", "ran out of memory"),
    "wrong_shape": ("predictions", "shape (64, 28)"),
    "nan": ("predictions", "1920 NaN and 0 infinite values"),
    "infinity": ("predictions", "0 NaN and 1920 infinite values"),
    "not_a_tensor": ("predictions", "forward returned a list, not a tensor"),
    "exits_early": ("predictions", "exited with code 3"),
}
