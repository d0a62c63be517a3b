"""
grade(): the one function that owns the grading boundary and its defaults.

    from grader.api import grade
    results = grade(submissions=["submissions/"], test_data="datasets/facial_keypoints_test",
                    out_dir="results", jobs=2)

For each submission it writes out_dir/<name>.json (Gradescope's results.json
shape, written atomically as soon as that submission is done) and, when it was
scored, out_dir/predictions/<name>.npy (for the class report), then rebuilds
out_dir/grades.csv and out_dir/leaderboard.md from every result in out_dir. The
command line (grader/cli.py) is a thin layer over this function.
"""
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import cluster, forkserver, jail
from .jail import DESCRIPTIONS, Limits
from .pipeline import Context, finish, grader_failed
from .points import PointsRule
from .results import PREDICTIONS, read_result, write_gradebook, write_json_atomic
from .sandbox import IsolationError, detect_isolation, exposed_paths
from .trusted_checks import CELLS as CHECK_CELLS
from .trusted import PACKAGE, DataFormatError, atomic_file, file_sha256, pixels_to_unit, read_keypoints_csv
from .unpack import find_submission_root, holds_submission, submission_sha256

# The instructors' hidden test zip, by name: its SHA-256 (kept out of the student package).
HIDDEN_TEST_SHA256 = {"facial_keypoints_test.zip": "e09ca5ca7d6cbe85bb94d02027b081dfc679714e90a2fc11f115fdcf7c45ffb8"}
RESULTS_VERSION = 1   # bump when a change of the grader should regrade everything
GRADER_FILES = (Path(__file__).parent, PACKAGE)   # the grader and the solved exercise_code it trusts


class GradingConfigError(ValueError):
    """The grading run cannot start (a missing test file, an unwritable folder...); the message says what to fix."""


def grade(*, submissions, test_data, out_dir, jobs=1, timeout_s=120, memory_mb=4096, force=False,
          max_points=PointsRule.max_points, full_points_at=PointsRule.full_at, zero_points_at=PointsRule.zero_at,
          shard=None, isolation="jail", scratch_dir=None, progress=False, scheduler=None, checks=()):
    """
    Grade submissions on the hidden test split.

    Inputs:
    - submissions: Paths: .zip files, unpacked submission folders, or folders of .zip files;
      or a dict {name: path of a .zip or submission folder} that names them (say, by student id)
    - test_data: The hidden test CSV, or a folder holding test.csv
    - out_dir: Folder for the results (created)
    - jobs: Submissions graded at once, each by its own worker process (one CPU core each); above 1,
      on a local Dask cluster (grader/cluster.py)
    - timeout_s: Wall-clock seconds for one submission's worker (start, import, load, predict)
    - memory_mb: Address-space limit of the worker, in MB
    - force: Grade again submissions that out_dir already holds a result for. Without it, a result is
      reused only if it was graded with the same settings and the submission's content is unchanged
    - max_points, full_points_at, zero_points_at: The PointsRule (see grader/points.py)
    - shard: "K/N" grades only the K-th of N equal shares of the submissions (for several machines);
      "auto" reads K and N from a Slurm job array or a Kubernetes indexed job (see _select_shard)
    - isolation: "jail" (bubblewrap, see grader/jail.py; "auto" is the same) or, only when asked for by name,
      "user" (as root, in a platform's container where the jail cannot start: the code runs as another uid,
      and the hidden data, out_dir and the grader must be root's alone) or "none": the students' code then
      runs unjailed and could read the hidden test file
    - scratch_dir: Where scratch folders go (default: the system's temporary folder)
    - progress: Show a progress bar on stderr
    - scheduler: Address of a running Dask scheduler ("tls://host:8786"): the submissions are graded
      on its workers, which get each submission and the test images, never the labels
    - checks: grade_ids of the notebooks' trusted checks (grader/trusted_checks.py, CELLS) to run too, for
      nbgrader's autograde (grader/nbgrader_plugins.py): the model's worker runs them once it has sent its
      predictions. Each result then has extra_data["trusted_checks"] {grade_id: {"passed", "lines"}}

    Returns:
    - List of this batch's results (those skipped as already graded included), in submission order,
      each as the dict written to out_dir/<name>.json (results.Result.to_json())

    Raises GradingConfigError before grading anything if the run cannot start, the
    jail included: it never falls back to running student code unjailed.
    Bad submissions never raise: each gets a result with score 0 and a reason.
    A bug of the grader on one submission becomes that submission's result (graded
    again on the next run), and the batch goes on.
    """
    try:
        points = PointsRule(max_points, full_points_at, zero_points_at)
        limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
        isolation = detect_isolation(isolation)
    except (ValueError, IsolationError) as error:
        raise GradingConfigError(str(error)) from None
    if jobs < 1 or timeout_s <= 0 or memory_mb < 256:
        raise GradingConfigError(f"Need jobs >= 1, timeout_s > 0 and memory_mb >= 256 "
                                 f"(got {jobs}, {timeout_s}, {memory_mb})")
    unknown = set(checks) - set(CHECK_CELLS)
    if unknown:
        raise GradingConfigError(f"checks: the trusted checks are {sorted(CHECK_CELLS)}; got {sorted(unknown)}")
    if checks and isolation == "user":
        raise GradingConfigError("checks: the trusted checks run in the jail or, asked for by name, without it "
                                 "(isolation 'none'), never with isolation 'user'")
    if isolation == "none":
        warnings.warn(f"Grading with isolation 'none', as asked: {DESCRIPTIONS['none']}.")
    test_csv = test_csv_path(test_data)
    out_dir = _writable_dir(out_dir)
    named = _select_shard(find_submissions(submissions), shard)
    _keep_private(isolation, test_csv=test_csv, out_dir=out_dir,
                  **{f"submission {name}": Path(path).resolve() for name, path in named})
    # A result is reused only for the same hidden data, points rule, limits, isolation and grader version,
    # and only for the same submission content.
    settings = {"test_sha256": file_sha256(test_csv), "points": points.as_dict(), "isolation": isolation,
                "timeout_s": timeout_s, "memory_mb": memory_mb, "version": RESULTS_VERSION}
    if checks:
        settings["checks"] = sorted(checks)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    results, todo = {}, []
    for name, source in named:
        digest = submission_sha256(source)
        previous = None if force else read_result(out_dir / f"{name}.json")
        if (previous and digest and previous.extra.get("key") == key
                and previous.extra.get("source_sha256") == digest and not previous.extra.get("grader_error")):
            results[name] = previous
        else:
            todo.append((name, source, digest))
    if todo:
        _grade_all(todo, results, _read_test_data(test_csv), out_dir,
                   dict(limits=limits, isolation=isolation, points=points, key=key, checks=tuple(sorted(checks))),
                   jobs, scheduler, scratch_dir,
                   progress)
    write_gradebook(out_dir)
    return [results[name].to_json() for name, _ in named]


def _grade_all(todo, results, data, out_dir, settings, jobs, scheduler, scratch_dir, progress):
    """Grade each (name, source, digest) of todo, `jobs` at once or on a Dask cluster (grader/cluster.py);
    write each result as soon as it is done."""
    if scratch_dir is not None:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
    run_dir, context = Path(tempfile.mkdtemp(prefix="grader-run-", dir=scratch_dir)), None
    try:
        images = run_dir / "images.npy"
        np.save(images, data.images)                        # images only: the labels stay in this process
        images.chmod(0o644)                                 # the worker's unprivileged user reads it
        run_dir.chmod(0o711)                                # and may pass through, never list (isolation "user")
        targets = pixels_to_unit(torch.from_numpy(data.keypoints)).numpy()   # (N, 15, 2), as the dataset
        context = Context(images=images, count=len(targets), targets=targets, scratch=run_dir,
                          batch=f"{run_dir.name}-{uuid.uuid4().hex}", **settings)
        sources = {name: (source, digest) for name, source, digest in todo}
        with cluster.runner(jobs, scheduler) as run, \
                tqdm(total=len(todo), unit="submission", disable=not progress, file=sys.stderr) as bar:
            for name, outcome in run([(name, source) for name, source, _ in todo], context):
                source, digest = sources[name]
                try:
                    result = finish(name, source, outcome, context)
                except Exception as error:   # a bug of ours outside the steps: this submission's result says so
                    result = grader_failed(source, name, context, error)
                result.extra["source_sha256"] = digest
                results[name] = result
                save_predictions(out_dir, name, outcome.predictions if result.scored else None)
                write_json_atomic(out_dir / f"{name}.json", result)
                bar.update()
    except cluster.ClusterError as error:
        raise GradingConfigError(str(error)) from None
    finally:
        if context is not None:   # its fork servers, here (jobs=1, or the local cluster's threads)
            forkserver.close_batch(context.batch)
        shutil.rmtree(run_dir, ignore_errors=True)


def save_predictions(out_dir, name, predictions):
    """
    Keep a scored submission's predictions on the hidden faces beside its result, for the
    instructors' class report (out_dir/PREDICTIONS/<name>.npy, float32 (N, 30)); remove a stale
    file when there are none. They are the model's outputs, not labels; students never get them.
    """
    path = out_dir / PREDICTIONS / f"{name}.npy"
    if predictions is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(exist_ok=True)
    with atomic_file(path) as f:
        np.save(f, np.asarray(predictions, dtype=np.float32).reshape(len(predictions), -1))


def find_submissions(paths):
    """
    The submissions named by paths, as a sorted list of (name, path).

    A path may be a .zip (or any file: it is graded, and refused if it is not a
    zip), an unpacked submission folder, or a folder of .zip files and
    submission folders. Names are file names without .zip, made safe for file names.
    A dict {name: path} names its submissions itself.
    """
    if isinstance(paths, dict):
        found = [(name, Path(path)) for name, path in paths.items()]
    else:
        found = [(path.name.removesuffix(".zip"), path) for path in _submission_paths(paths)]
    named = sorted((re.sub(r"[^A-Za-z0-9._-]", "_", name) or "submission", path) for name, path in found)
    duplicates = sorted({name for name, _ in named if sum(n == name for n, _ in named) > 1})
    if duplicates:
        raise GradingConfigError(f"Several submissions have the same name: {', '.join(duplicates[:10])}. "
                                 "Grade them into separate output folders, or rename them.")
    return named


def _submission_paths(paths):
    """The .zip files and submission folders that paths name (see find_submissions)."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise GradingConfigError(f"{path}: no such file or folder")
        if path.is_file() or _is_submission_folder(path):
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.suffix == ".zip" and p.is_file() or _is_submission_folder(p))
        if not inside:
            raise GradingConfigError(f"{path} is neither a submission (no models/ or exercise_code/ in it) "
                                     "nor a folder of submission .zip files")
        found += inside
    return found


def _is_submission_folder(path):
    return path.is_dir() and holds_submission(find_submission_root(path))   # itself, or its only subfolder


def _select_shard(named, shard):
    """Every N-th submission, starting with the K-th, for shard "K/N" or "auto" (all for None)."""
    if shard is None:
        return named
    k, n = _shard_from_environment() if shard == "auto" else _parse_shard(shard)
    return named[k - 1::n]


def _parse_shard(shard):
    match = re.fullmatch(r"(\d+)/(\d+)", str(shard))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise GradingConfigError(f"--shard must be K/N with 1 <= K <= N, like 2/4, or auto (got {shard!r})")
    return int(match[1]), int(match[2])


def _shard_from_environment(env=os.environ):
    """
    (K, N) of this task of a job array:
    - Slurm (sbatch --array=0-7): SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT
    - Kubernetes indexed Job: JOB_COMPLETION_INDEX (from 0) of GRADER_SHARDS, which the Job's spec sets to its
      `completions` (Kubernetes does not tell a pod the count)
    """
    if "SLURM_ARRAY_TASK_ID" in env:
        names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
        values = [env.get(name, "") for name in names]
        if not all(value.isdigit() for value in values) or int(values[2]) < 1:
            raise GradingConfigError(f"--shard auto: this Slurm job's {', '.join(names)} are {values}; "
                                     "run it as a job array (sbatch --array=0-7) with consecutive task ids")
        k, n = int(values[0]) - int(values[1]) + 1, int(values[2])
    elif "JOB_COMPLETION_INDEX" in env:
        index, count = env["JOB_COMPLETION_INDEX"], env.get("GRADER_SHARDS", "")
        if not (index.isdigit() and count.isdigit()):
            raise GradingConfigError("--shard auto in a Kubernetes indexed Job needs GRADER_SHARDS set to the "
                                     f"Job's completions in its spec (JOB_COMPLETION_INDEX={index!r}, "
                                     f"GRADER_SHARDS={count!r}); see the README")
        k, n = int(index) + 1, int(count)
    else:
        raise GradingConfigError("--shard auto found no job array here (no SLURM_ARRAY_TASK_ID, no "
                                 "JOB_COMPLETION_INDEX): pass --shard K/N")
    if not 1 <= k <= n:
        raise GradingConfigError(f"--shard auto: task {k} of {n} is out of range; check the job array's settings")
    return k, n


def test_csv_path(test_data):
    """The hidden test CSV that test_data names (the CSV, or the folder holding test.csv), resolved;
    GradingConfigError, saying how to get it, if it is not there."""
    path = Path(test_data)
    csv = path / "test.csv" if path.is_dir() else path
    if not csv.is_file():
        raise GradingConfigError(f"{csv}: the hidden test file is not there. Pass --test-data the test CSV or the "
                                 "folder holding test.csv (get it with: python -m exercise_code.util.download "
                                 "--source facial_keypoints_test.zip --dest datasets/facial_keypoints_test)")
    return csv.resolve()


def _read_test_data(csv):
    try:
        data = read_keypoints_csv(csv)   # not the cached loader: grading writes nothing beside the hidden file
    except (DataFormatError, OSError) as error:
        raise GradingConfigError(f"The hidden test file cannot be read: {error}") from None
    if len(data.images) == 0:
        raise GradingConfigError(f"{csv} has no complete rows to grade with")
    return data


def _writable_dir(out_dir):
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as error:
        raise GradingConfigError(f"Cannot write results to {out_dir} ({error.strerror or error}). "
                                 "Pass --out a folder you can write to.") from None
    return out_dir.resolve()


def _keep_private(isolation, **paths):
    """Refuse to run if the worker could read the hidden labels or the results: in the jail, if they are
    in a folder it shows; as another user ("user"), if a stranger's uid can read them, the grader's
    own files (the solutions among them) or the submissions (a classmate's), tried for real."""
    for exposed in map(Path, exposed_paths(isolation)):
        for what, path in paths.items():
            if path.is_relative_to(exposed.resolve()):
                raise GradingConfigError(f"{path} ({what}) is inside {exposed}, which the worker can read. "
                                         "Move it elsewhere.")
    if isolation == "user":
        problem = jail.unreadable_problem([*paths.values(), *GRADER_FILES])
        if problem:
            raise GradingConfigError(f"Isolation 'user' keeps secrets by file modes alone, and {problem}.")
