"""
What the jail costs a notebook kernel: start, run one cell, shut down, jailed and plain, in one run.

    python benchmarks/kernel_startup.py [--runs N]

Each run does what autograde does for one notebook: start a kernel in a
submission-like folder (the pack's exercise_09/ and exercise_code/), run one cell,
shut it down. The jailed kernel is the pack's kernelspec (grader/kernel_jail.py:
bubblewrap, a private copy of the folder, unix sockets); the plain one is ipykernel's
`python3`. The two alternate, after one warm-up each (imports, the jail's probe).
Prints every run, the medians and their ratio.
"""
import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

from grader.kernel_jail import KERNEL_NAME, install

ROOT = Path(__file__).resolve().parents[1]

KERNELS = {"jailed": KERNEL_NAME, "plain": "python3"}
CELL = "import os\nprint(os.getuid(), os.getcwd())"


def one_run(kernel_name, cwd):
    """Seconds to start a kernel in cwd, run CELL and shut the kernel down."""
    start = time.perf_counter()
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(CELL, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each kernel (default: %(default)s)")
    args = parser.parse_args()
    install()   # as `make setup` does; a no-op when it is there
    with tempfile.TemporaryDirectory(prefix="kernel-startup-") as scratch:
        folder = Path(scratch) / "exercise_09"   # like autograded/<student>/exercise_09/
        shutil.copytree(ROOT / "exercise_09", folder)
        shutil.copytree(ROOT / "exercise_code", folder / "exercise_code")
        for name in KERNELS.values():
            one_run(name, folder)   # warm-up
        times = {label: [] for label in KERNELS}
        for i in range(args.runs):
            for label, name in KERNELS.items():
                times[label].append(one_run(name, folder))
                print(f"run {i + 1}: {label:6s} {times[label][-1]:.2f} s", flush=True)
    medians = {label: statistics.median(seconds) for label, seconds in times.items()}
    for label, median in medians.items():
        print(f"median {label:6s} {median:.2f} s  (start, one cell, shutdown; {args.runs} runs)")
    print(f"jailed / plain: {medians['jailed'] / medians['plain']:.2f}x")


if __name__ == "__main__":
    main()
