"""
Grading on Dask (grader/cluster.py): the local cluster of --jobs gives the results
of one process, no label ever goes to a worker, and a cluster started as separate
processes survives a worker killed mid-batch, refuses a worker that cannot jail,
and resumes an interrupted run. Everything runs on 127.0.0.1.
"""
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed   # the cluster extra, which make setup installs: never skipped
import pytest


from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip
from grader import api
from grader import cluster as cluster_module
from grader.api import GradingConfigError, grade
from dask_cluster import Cluster, wait_for
from grading_scenarios import build_submission, patch_forward, valid_workspace

pytestmark = pytest.mark.slow

# Quick scenarios, one of each kind of result: scored (a zip, a folder), refused at unpack, failed in the code.
SCENARIOS = ["valid", "valid_folder", "not_a_zip", "symlink", "import_error", "wrong_shape", "missing_model"]
SLOW_S = 4   # each slow submission's forward pass sleeps this long: time to kill its worker


def comparable(result):
    """A result without what differs between two gradings of the same submission (times, paths)."""
    extra = {key: value for key, value in result["extra_data"].items()
             if key not in ("timings", "execution_time_s", "graded_at", "source")}
    tests = [{key: value for key, value in test.items() if key != "output"} | {"output": _steady(test["output"])}
             for test in result["tests"]]
    return {**result, "execution_time": None, "extra_data": extra, "tests": tests, "output": _steady(result["output"])}


def _steady(text):
    # "Predicted all 64 test images in 1.3 s": the seconds differ from run to run, and so do the scratch
    # folders a traceback names ("/tmp/grader-run-x1y2/submission-z3/unpacked/exercise_code/...")
    text = re.sub(r"/\S*/unpacked/", "<unpacked>/", text)
    return " ".join("<s>" if word.replace(".", "").isdigit() and "." in word else word for word in text.split())


@pytest.fixture(scope="module")
def submissions(valid_model, hidden_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    return {name: build_submission(name, root, valid_model, spy_targets=[hidden_subset]) for name in SCENARIOS}


def test_the_local_cluster_gives_the_results_of_one_process(submissions, hidden_subset, tmp_path, monkeypatch):
    """Does --jobs 2 (a local Dask cluster) give, submission by submission, what one process gives, while
    nothing sent to the cluster holds a label and nothing listens beyond this machine?"""
    sent = spy_on_the_cluster(monkeypatch)
    here = grade(submissions=submissions, test_data=hidden_subset, out_dir=tmp_path / "here", jobs=1)
    assert not sent, "one job must not start a cluster"
    there = grade(submissions=submissions, test_data=hidden_subset, out_dir=tmp_path / "there", jobs=2)
    assert [comparable(r) for r in there] == [comparable(r) for r in here]
    assert {r["extra_data"]["submission"]: r["extra_data"]["raw_score"] is not None for r in there} == {
        name: name in ("valid", "valid_folder") for name in SCENARIOS}
    assert_no_labels_in(sent, hidden_subset)
    listening = {address for _, _, addresses, _ in sent for address in addresses}
    assert listening and all(ip in LOOPBACK_HEX for ip, _ in listening), listening   # loopback only
    # 7 submissions, but never more than 2 per worker thread on the cluster at once (the scheduler's memory)
    assert max(on_cluster for *_, on_cluster in sent) <= cluster_module.IN_FLIGHT_PER_THREAD * 2


def spy_on_the_cluster(monkeypatch):
    """Record every argument the grader hands to Dask (submit, scatter), the addresses this process listens
    on meanwhile, and how many submissions are on the cluster; returns the list it fills with
    (args, kwargs, addresses, submissions on the cluster)."""
    sent = []
    for method in ("submit", "scatter"):
        honest = getattr(distributed.Client, method)

        def spy(self, *args, _honest=honest, **kwargs):
            on_cluster = sum(str(key).startswith("grade-") for key in self.futures)   # submissions sent before
            sent.append((args, kwargs, listening_addresses(), on_cluster))
            return _honest(self, *args, **kwargs)
        monkeypatch.setattr(distributed.Client, method, spy)
    return sent


def listening_addresses():
    """The (IP in hex, as /proc/net writes it, port) of every TCP socket this process listens on."""
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:   # closed meanwhile (by another thread)
            pass
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and f"socket:[{fields[9]}]" in sockets:   # 0A: LISTEN
                found.append(tuple(fields[1].split(":")))
    return found


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000"}   # 127.0.0.1 and ::1


def assert_no_labels_in(sent, hidden_csv):
    """No label, as numbers or as CSV text, in anything sent (pickled as Dask pickles it)."""
    from grader.trusted import pixels_to_unit, read_keypoints_csv
    import torch

    data = read_keypoints_csv(hidden_csv)
    labels = [data.keypoints.tobytes()[:64],                                       # in pixels
              pixels_to_unit(torch.from_numpy(data.keypoints)).numpy().tobytes()[:64]]   # as the score uses them
    row = hidden_csv.read_text().splitlines()[1]
    labels.append(row.split(",")[0].encode())   # the first label as the CSV writes it
    assert sent
    for args, kwargs, *_ in sent:
        blob = pickle.dumps((args, {k: v for k, v in kwargs.items() if k != "key"}))
        for label in labels:
            assert label not in blob, "a label was sent to the cluster"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, isolation):
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        for name in ("w1", "w2"):
            cluster.add_worker(name)
        yield cluster
    finally:
        cluster.close()


def slow_submissions(folder, model, count):
    """`count` valid zips whose forward pass sleeps SLOW_S seconds first."""
    paths = {}
    for k in range(count):
        work = valid_workspace(folder / f"slow{k}", model)
        patch_forward(work, f"import time\ntime.sleep({SLOW_S})\nreturn out")
        paths[f"slow{k}"] = create_submission_zip(model_path=work / MODEL_ENTRY, pack_root=work, out_dir=work)
    return paths


def test_a_worker_killed_mid_batch_costs_no_result(cluster, valid_model, hidden_subset, tmp_path):
    """With one of two workers killed while it grades, does every submission still get its right score?"""
    subs = slow_submissions(tmp_path, valid_model, 4)
    expected = grade(submissions={"slow0": subs["slow0"]}, test_data=hidden_subset, out_dir=tmp_path / "one")[0]
    killed = []

    def kill_a_busy_worker():
        with distributed.Client(cluster.address, timeout=30) as client:
            pids = client.run(os.getpid)
            wait_for(lambda: any(client.processing().values()), "a task to start")
            time.sleep(1)   # it is now inside its jail
            worker = next(address for address, keys in client.processing().items() if keys)
            os.kill(pids[worker], signal.SIGKILL)
            killed.append(worker)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    results = grade(submissions=subs, test_data=hidden_subset, out_dir=tmp_path / "out", scheduler=cluster.address,
                    timeout_s=60)
    killer.join()
    assert killed
    assert [r["extra_data"]["submission"] for r in results] == sorted(subs)
    for result in results:
        assert result["extra_data"]["grader_error"] is None, result["extra_data"]["grader_error"]
        assert result["extra_data"]["raw_score"] == expected["extra_data"]["raw_score"]


def test_a_worker_that_cannot_jail_stops_the_run(cluster, submissions, hidden_subset, tmp_path):
    """Does a worker whose machine cannot start the jail (here: no bwrap on its PATH) make the run refuse,
    before any submission is sent?"""
    worker = cluster.add_worker("nojail", env={**os.environ, "PATH": str(Path(sys.executable).parent)})
    try:
        with pytest.raises(GradingConfigError, match=r"1 worker\(s\) of the cluster cannot grade.*bwrap"):
            grade(submissions=submissions, test_data=hidden_subset, out_dir=tmp_path, scheduler=cluster.address)
        assert not list(tmp_path.glob("*.json"))
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_an_interrupted_run_resumes(cluster, valid_model, hidden_subset, tmp_path):
    """Interrupted (Ctrl-C) after its first result, does the next run keep that result and grade only the rest?"""
    subs = slow_submissions(tmp_path, valid_model, 3)
    folder, out = tmp_path / "submissions", tmp_path / "out"
    folder.mkdir()
    for name, path in subs.items():
        shutil.copy(path, folder / f"{name}.zip")
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--test-data", str(hidden_subset),
               "--out", str(out), "--scheduler", cluster.address]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: any(out.glob("*.json")) or run.poll() is not None, "the first result", timeout_s=120)
    assert run.poll() is None, run.communicate()[0]
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
    first = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 1 <= len(first) < 3, first
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert sorted(after) == sorted(subs) and all(after[name] == first[name] for name in first)
    assert all(json.loads((out / f"{name}.json").read_text())["extra_data"]["raw_score"] for name in subs)


@pytest.mark.parametrize("env, shard", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8"}, (4, 8)),
    ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "3"}, (3, 3)),
    ({"JOB_COMPLETION_INDEX": "0", "GRADER_SHARDS": "4"}, (1, 4)),
])
def test_shard_auto_reads_the_job_array(env, shard):
    """Does --shard auto take K/N from a Slurm array task or a Kubernetes indexed Job?"""
    assert api._shard_from_environment(env) == shard


@pytest.mark.parametrize("env, words", [
    ({}, "found no job array here"),
    ({"JOB_COMPLETION_INDEX": "2"}, "needs GRADER_SHARDS"),
    ({"SLURM_ARRAY_TASK_ID": "5"}, "run it as a job array"),
    ({"JOB_COMPLETION_INDEX": "4", "GRADER_SHARDS": "4"}, "out of range"),
])
def test_shard_auto_says_what_is_missing(env, words):
    """Outside a job array, or with a half-set one, does --shard auto say what to set?"""
    with pytest.raises(GradingConfigError, match=words):
        api._shard_from_environment(env)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, hidden_subset, monkeypatch):
    """Does a scheduler address where nothing listens give one clear error, before anything is graded?"""
    import grader.cluster

    monkeypatch.setattr(grader.cluster, "CONNECT_TIMEOUT_S", 2)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(GradingConfigError, match=rf"Cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        grade(submissions=[tmp_path / "a.zip"], test_data=hidden_subset, out_dir=tmp_path / "out",
              scheduler=f"tcp://127.0.0.1:{port}")
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_tls_scheduler_without_a_certificate_is_a_clear_error(tmp_path, hidden_subset, monkeypatch):
    """Does tls:// without the grader's certificate in Dask's settings say which settings to make?"""
    for name in ("CA_FILE", "CLIENT__CERT", "CLIENT__KEY"):
        monkeypatch.delenv(f"DASK_DISTRIBUTED__COMM__TLS__{name}", raising=False)
    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(GradingConfigError, match="DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"):
        grade(submissions=[tmp_path / "a.zip"], test_data=hidden_subset, out_dir=tmp_path / "out",
              scheduler="tls://127.0.0.1:8786")


def test_predictions_a_worker_sends_are_checked_again_where_the_labels_are(tmp_path):
    """Does finish() refuse predictions that check_predictions would never pass (a broken or forged worker:
    the wrong shape, NaN), or an outcome that skipped a check, with a "not your fault" result and no score,
    and score sane ones?"""
    import numpy as np

    from grader.jail import Limits
    from grader.pipeline import PREDICT_STEPS, Context, Outcome, finish
    from grader.points import PointsRule

    targets = np.zeros((4, 15, 2), dtype=np.float32)
    context = Context(images=tmp_path / "images.npy", count=4, scratch=tmp_path, limits=Limits(timeout_s=1, memory_mb=64),
                      isolation="jail", targets=targets, points=PointsRule(), key="k")
    forged = [np.zeros((3, 30), dtype=np.float32), np.full((4, 30), np.nan, dtype=np.float32), None]
    every_step = ["passed"] * len(PREDICT_STEPS)
    sent = [Outcome(passed=every_step, predictions=predictions) for predictions in forged]
    sent.append(Outcome(passed=every_step[:-2], predictions=np.full((4, 30), 0.1, dtype=np.float32)))   # skipped two
    for outcome in sent:
        result = finish("s", tmp_path / "s.zip", outcome, context).to_json()
        assert result["extra_data"]["raw_score"] is None and result["score"] == 0
        assert "forged worker" in result["extra_data"]["grader_error"]
    sane = finish("s", tmp_path / "s.zip", Outcome(passed=every_step, predictions=np.full((4, 30), 0.1,
                                                                                          dtype=np.float32)), context)
    assert sane.to_json()["extra_data"]["raw_score"] == pytest.approx(1 / (2 * 0.01))
