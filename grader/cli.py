"""
The command line: a thin layer over grader.api.grade and results.merge_results,
whose defaults it reads from the functions themselves.

    python -m grader SUBMISSION... --test-data PATH --out DIR [--jobs N] [--timeout S] [--force]
    python -m grader.merge RESULTS_DIR... --out DIR

Exit status: 0 when the batch ran, whatever the submissions scored; 2 for a
usage or configuration error (nothing was graded; the message says what to fix).
"""
import argparse
import sys
import textwrap
import time
import warnings

from .api import GradingConfigError, grade
from .results import MergeError, failed_check, merge_results
from .jail import ISOLATIONS

SHOWN_ROWS = 20   # rows of the batch printed; the full table is in grades.csv


def main(argv=None):
    defaults = grade.__kwdefaults__
    parser = argparse.ArgumentParser(
        prog="python -m grader", description="Grade facial keypoint submissions on the hidden test split.",
        epilog="Results: DIR/<name>.json per submission (Gradescope's results.json shape), DIR/grades.csv and "
               "DIR/leaderboard.md. Merge the folders of several machines with: python -m grader.merge")
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help=".zip files, unpacked submission folders, or folders of .zip files")
    parser.add_argument("--test-data", required=True, metavar="PATH",
                        help="the hidden test CSV, or the folder holding test.csv")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created)")
    parser.add_argument("--jobs", type=int, default=defaults["jobs"],
                        help="submissions graded at once, one CPU core each (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults["timeout_s"], metavar="S",
                        help="seconds one submission's code may run in all (default %(default)s)")
    parser.add_argument("--memory-mb", type=int, default=defaults["memory_mb"], metavar="MB",
                        help="memory (address space) one submission's code may use (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="grade again submissions already graded in DIR")
    parser.add_argument("--max-points", type=float, default=defaults["max_points"],
                        help="points for a full score (default %(default)s)")
    parser.add_argument("--full-points-at", type=float, default=defaults["full_points_at"], metavar="SCORE",
                        help="raw score 1/(2*MSE) that earns full points (default %(default)s, as in I2DL)")
    parser.add_argument("--zero-points-at", type=float, default=defaults["zero_points_at"], metavar="SCORE",
                        help="give partial points, rising linearly from 0 at this raw score to full points "
                             "(default: none, all or nothing)")
    parser.add_argument("--shard", default=defaults["shard"], metavar="K/N",
                        help="grade only the K-th of N shares of the submissions (one share per machine)")
    parser.add_argument("--isolation", default=defaults["isolation"], choices=["auto", *ISOLATIONS],
                        help="how the submissions' code is isolated (default %(default)s: bubblewrap; auto is the "
                             "same). The grader refuses to run if the jail cannot start; 'none' runs student code "
                             "unjailed, where it could read the hidden test file: only ever by name")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = grade(submissions=args.submissions, test_data=args.test_data, out_dir=args.out,
                            jobs=args.jobs, timeout_s=args.timeout, memory_mb=args.memory_mb, force=args.force,
                            max_points=args.max_points, full_points_at=args.full_points_at,
                            zero_points_at=args.zero_points_at, shard=args.shard, isolation=args.isolation,
                            progress=True)
    except GradingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    _print_batch(results, args.out, time.perf_counter() - start)
    return 0


def merge_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m grader.merge",
        description="Merge the result folders of several grading runs (machines) into one gradebook.")
    parser.add_argument("result_dirs", nargs="+", metavar="RESULTS_DIR", help="folders written by python -m grader")
    parser.add_argument("--out", required=True, metavar="DIR", help="the merged folder (created)")
    parser.add_argument("--force", action="store_true",
                        help="if two folders disagree on a submission, keep the result graded last")
    args = parser.parse_args(argv)
    try:
        results = merge_results(result_dirs=args.result_dirs, out_dir=args.out, force=args.force)
    except MergeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scored = sum(r["extra_data"]["raw_score"] is not None for r in results)
    print(f"Merged {len(results)} results ({scored} scored) into {args.out}: grades.csv, leaderboard.md")
    return 0


def _print_batch(results, out_dir, seconds):
    """A short table of the batch, best first, and where the rest is."""
    ranked = sorted(results, key=lambda r: (r["extra_data"]["raw_score"] is None, -(r["extra_data"]["raw_score"] or 0)))
    print(f"{'submission':<28} {'points':>7} {'1/(2*MSE)':>10}  result")
    for result in ranked[:SHOWN_ROWS]:
        extra, failed = result["extra_data"], failed_check(result)
        raw = "-" if extra["raw_score"] is None else f"{extra['raw_score']:.2f}"
        verdict = "scored" if extra["raw_score"] is not None else \
            textwrap.shorten(failed["output"].strip().splitlines()[0], 90, placeholder=" ...")
        print(f"{extra['submission'][:28]:<28} {result['score']:>7g} {raw:>10}  {verdict}")
    if len(ranked) > SHOWN_ROWS:
        print(f"... and {len(ranked) - SHOWN_ROWS} more (see grades.csv)")
    isolations = sorted({r["extra_data"].get("isolation") for r in results} - {None})
    scored = sum(r["extra_data"]["raw_score"] is not None for r in results)
    print(f"{len(results)} submissions, {scored} scored, in {seconds:.1f} s. Isolation: {', '.join(isolations) or '-'}.")
    print(f"Results: {out_dir}/<name>.json, {out_dir}/grades.csv, {out_dir}/leaderboard.md")
