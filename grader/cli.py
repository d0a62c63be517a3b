"""
The pack's one command. Each verb is a thin layer over an API function, whose
defaults it reads from the function itself:

    python -m grader grade SUBMISSION... --test-data PATH --out DIR [--jobs N] [--timeout S] [--force]
    python -m grader autograde ASSIGNMENT --test-data PATH [--jobs N] [--force] [-- NBGRADER_OPTION...]
    python -m grader merge RESULTS_DIR... --out DIR [--force]
    python -m grader release [--check]
    python -m grader bundle [--out ZIP]
    python -m grader gradescope build --test-data PATH --out ZIP [--score-visibility WHEN]
    python -m grader gradescope run [--root /autograder]
    python -m grader prairielearn build --test-data PATH --out DIR [--image NAME]
    python -m grader prairielearn run [--root /grade]
    python -m grader canvas EXPORT.csv --column NAME --grades RESULTS_DIR_OR_NBGRADER_CSV --out FILLED.csv
    python -m grader moodle WORKSHEET.csv --grades RESULTS_DIR_OR_NBGRADER_CSV --out FILLED.csv [--feedback]
    python -m grader report RESULTS_DIR --test-data PATH --out REPORT.html [--submissions PATH...]
    python -m grader dataset --from udacity|kaggle|i2dl SOURCE --out DIR [--seed N] [--force]

Each verb and its function:

    grade, merge        grader.api.grade, grader.results.merge_results
    autograde           grader.class_autograde.autograde_class
    release             grader.release.write_student_files (or drifted_files, with --check)
    bundle              grader.bundle.build_bundle
    gradescope          grader.platforms.gradescope (build_autograder and run)
    prairielearn        grader.platforms.prairielearn (build_question and run)
    canvas, moodle      grader.platforms.canvas.fill_canvas, grader.platforms.moodle.fill_moodle
    report              grader.report.build_report
    dataset             grader.dataset_build.build_dataset

Without a verb, `python -m grader SUBMISSION...` grades.

Exit status: 0 when the verb did its work (a graded batch, whatever the submissions
scored); 1 when release --check finds drifted files or the bundle cannot be built;
2 for a usage or configuration error (nothing was done; the message says what to fix).
"""
import argparse
import sys
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

from . import bundle, release
from .api import GradingConfigError, grade
from .jail import ISOLATIONS
from .results import MergeError, failed_check, merge_results

SHOWN_ROWS = 20   # rows of the batch printed; the full table is in grades.csv


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] not in VERBS and not argv[0].startswith("-"):
        argv = ["grade", *argv]   # no verb: grading is what `python -m grader` did before it had verbs
    argv, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"{args.verb} takes no options after --")
    args.extra = extra
    return args.run(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m grader", description="Grade facial keypoint submissions; generate and bundle the student "
                                             "release. `python -m grader VERB --help` describes each verb.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add_verb in VERBS.values():
        add_verb(verbs)
    return parser


def add_grade(verbs):
    defaults = grade.__kwdefaults__
    parser = verbs.add_parser(
        "grade", help="grade submissions on the hidden test split",
        description="Grade facial keypoint submissions on the hidden test split.",
        epilog="Results: DIR/<name>.json per submission (Gradescope's results.json shape), DIR/grades.csv and "
               "DIR/leaderboard.md. Merge the folders of several machines with: python -m grader merge")
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help=".zip files, unpacked submission folders, or folders of .zip files")
    parser.add_argument("--test-data", required=True, metavar="PATH",
                        help="the hidden test CSV, or the folder holding test.csv")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created)")
    parser.add_argument("--jobs", type=int, default=defaults["jobs"],
                        help="submissions graded at once, one CPU core each; above 1 on a local Dask cluster "
                             "(default %(default)s)")
    parser.add_argument("--scheduler", default=defaults["scheduler"], metavar="ADDRESS",
                        help="grade on a running Dask cluster, tcp://host:8786 or tls://host:8786 (see the README); "
                             "its workers get the submissions and the test images, never the labels")
    parser.add_argument("--timeout", type=float, default=defaults["timeout_s"], metavar="S",
                        help="seconds one submission's code may run in all (default %(default)s)")
    parser.add_argument("--memory-mb", type=int, default=defaults["memory_mb"], metavar="MB",
                        help="memory (address space) one submission's code may use (default %(default)s)")
    parser.add_argument("--force", action="store_true", default=defaults["force"],
                        help="grade again submissions already graded in DIR")
    _add_points_options(parser, defaults)
    parser.add_argument("--shard", default=defaults["shard"], metavar="K/N",
                        help="grade only the K-th of N shares of the submissions (one share per machine); "
                             "auto: this task's share of a Slurm job array or a Kubernetes indexed Job")
    parser.add_argument("--isolation", default=defaults["isolation"], choices=["auto", *ISOLATIONS],
                        help="how the submissions' code is isolated (default %(default)s: bubblewrap; auto is the "
                             "same). The grader refuses to run if the jail cannot start; 'none' runs student code "
                             "unjailed, where it could read the hidden test file: only ever by name")
    parser.set_defaults(run=run_grade)


def run_grade(args):
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = grade(submissions=args.submissions, test_data=args.test_data, out_dir=args.out,
                            jobs=args.jobs, timeout_s=args.timeout, memory_mb=args.memory_mb, force=args.force,
                            max_points=args.max_points, full_points_at=args.full_points_at,
                            zero_points_at=args.zero_points_at, shard=args.shard, isolation=args.isolation,
                            progress=True, scheduler=args.scheduler)
    except GradingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    _print_batch(results, args.out, time.perf_counter() - start)
    return 0


def _add_points_options(parser, defaults):
    """The PointsRule's options (grader/points.py), for grade and the platform builders."""
    parser.add_argument("--max-points", type=float, default=defaults["max_points"],
                        help="points for a full score (default %(default)s)")
    parser.add_argument("--full-points-at", type=float, default=defaults["full_points_at"], metavar="SCORE",
                        help="raw score 1/(2*MSE) that earns full points (default %(default)s, as in I2DL)")
    parser.add_argument("--zero-points-at", type=float, default=defaults["zero_points_at"], metavar="SCORE",
                        help="give partial points, rising linearly from 0 at this raw score to full points "
                             "(default: none, all or nothing)")


def add_merge(verbs):
    defaults = merge_results.__kwdefaults__
    parser = verbs.add_parser(
        "merge", help="merge the result folders of several grading runs into one gradebook",
        description="Merge the result folders of several grading runs (machines) into one gradebook.")
    parser.add_argument("result_dirs", nargs="+", metavar="RESULTS_DIR",
                        help="folders written by python -m grader grade")
    parser.add_argument("--out", required=True, metavar="DIR", help="the merged folder (created)")
    parser.add_argument("--force", action="store_true", default=defaults["force"],
                        help="if two folders disagree on a submission, keep the result graded last")
    parser.set_defaults(run=run_merge)


def run_merge(args):
    try:
        results = merge_results(result_dirs=args.result_dirs, out_dir=args.out, force=args.force)
    except MergeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scored = sum(r["extra_data"]["raw_score"] is not None for r in results)
    print(f"Merged {len(results)} results ({scored} scored) into {args.out}: grades.csv, leaderboard.md")
    return 0


def add_release(verbs):
    parser = verbs.add_parser(
        "release", help="regenerate the student files from solutions/ (or, with --check, test them)",
        description="Regenerate the student files, exercise_code/ and exercise_09/, from solutions/: "
                    "solution regions stubbed, notebooks through nbgrader generate_assignment.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a student file differs from what solutions/ generates")
    parser.set_defaults(run=run_release)


def run_release(args):
    if not args.check:
        changed = release.write_student_files()
        print("\n".join(f"wrote {p.relative_to(release.REPO_ROOT)}" for p in changed) or "up to date")
        return 0
    drifted = release.drifted_files()
    for path in drifted:
        print(f"{path.relative_to(release.REPO_ROOT)} differs from what its solution generates")
    if drifted:
        print("Edit its source under solutions/, then run: python -m grader release")
        return 1
    print("exercise_code/ and exercise_09/ are up to date with solutions/")
    return 0


def add_bundle(verbs):
    defaults = bundle.build_bundle.__kwdefaults__
    parser = verbs.add_parser(
        "bundle", help="build the student release zip",
        description="Build the zip you hand to students: the student notebooks and exercise_code/, a README, "
                    "data instructions and requirements.txt. Refused while the student files have drifted.")
    parser.add_argument("--out", type=Path, default=defaults["out"], metavar="ZIP",
                        help="where to write the zip (default %(default)s)")
    parser.set_defaults(run=run_bundle)


def run_bundle(args):
    try:
        out, entries = bundle.build_bundle(out=args.out)
    except bundle.BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    # Count the files of each folder under the top one ("" for the top folder's own files).
    top = bundle.TOP_FOLDER
    folders = Counter(name.split("/")[1] + "/" if name.count("/") > 1 else "" for name in entries)
    for folder, count in sorted(folders.items()):
        print(f"  {count:3d} {'file ' if count == 1 else 'files'}  {top}/{folder}")
    first = f"{bundle.ASSIGNMENT}/{bundle.FIRST_NOTEBOOK}"
    if f"{top}/{first}" not in entries:
        print(f"warning: the README names {first}, which is not in the bundle", file=sys.stderr)
    print(f"Wrote {out} ({out.stat().st_size / 1e3:.1f} kB, {len(entries)} files)")
    return 0


def add_autograde(verbs):
    parser = verbs.add_parser(
        "autograde", help="nbgrader autograde of a whole class, several students at once",
        description="Run nbgrader's autograde of an assignment for every submitted student, JOBS at once, with "
                    "the same grades as plain `nbgrader autograde`. Run it in the course folder (the one holding "
                    "nbgrader_config.py).",
        epilog="More nbgrader settings go after --, as on nbgrader's command line: "
               "python -m grader autograde exercise_09 --test-data T --jobs 4 -- --Execute.timeout=60")
    parser.add_argument("assignment", help="the assignment's name, as in course/submitted/<student>/<assignment>")
    parser.add_argument("--test-data", required=True, metavar="PATH",
                        help="the hidden test CSV, or the folder holding test.csv (keep it outside the course)")
    parser.add_argument("--jobs", type=int, default=1, help="students autograded at once (default %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="autograde on the workers of this Dask scheduler (tcp://host:8786 or tls://...; see "
                             "the README): each gets a copy of the course and one student at a time, never the "
                             "hidden data; this process still writes the gradebook")
    parser.add_argument("--force", action="store_true",
                        help="autograde again students already autograded (as nbgrader autograde --force)")
    parser.add_argument("--course", default=".", metavar="DIR",
                        help="the course folder, holding nbgrader_config.py (default: this folder)")
    parser.set_defaults(run=run_autograde, takes_extra=True)


def run_autograde(args):
    from .class_autograde import ClassAutogradeError, autograde_class   # imported here: it imports nbgrader

    try:
        run = autograde_class(args.assignment, test_data=args.test_data, jobs=args.jobs, scheduler=args.scheduler,
                              force=args.force, course=args.course, nbgrader_args=args.extra)
    except ClassAutogradeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.seconds.items() if name != "gradebook")
    if run.on_workers:
        steps += f", of which this process's gradebook pass {run.seconds.get('gradebook', 0):.1f} s"
    where = f"on {args.scheduler}" if args.scheduler else f"with {args.jobs} jobs"
    print(f"Autograded {len(run.students)} students of {args.assignment} {where} ({steps}).")
    if run.on_workers:
        loaded = {step: n for (how, step), n in run.replayed.items() if how == "loaded"}
        computed = {step: n for (how, step), n in run.replayed.items() if how == "computed"}
        print(f"Taken from the workers: {loaded.get('kernel', 0)} kernel runs; from the models' results: "
              f"{loaded.get('checks', 0)} submissions' trusted checks; done again here: {computed.get('kernel', 0)} "
              f"kernel runs, {computed.get('checks', 0)} submissions' checks.")
    if run.skipped:
        print(f"Skipped {len(run.skipped)} already autograded (--force autogrades them again): "
              f"{', '.join(run.skipped[:10])}{' ...' if len(run.skipped) > 10 else ''}")
    if run.failed:
        print(f"nbgrader could not autograde {len(run.failed)}: {', '.join(sorted(run.failed))} "
              "(see the errors above; nbgrader's export shows them as 0)", file=sys.stderr)
        return 1
    return 0


def add_gradescope(verbs):
    from .platforms.gradescope import VISIBILITY, build_autograder

    defaults = build_autograder.__kwdefaults__
    parser = verbs.add_parser("gradescope", help="build Gradescope's autograder zip; grade inside Gradescope",
                              description="Gradescope programming assignments (see the README's Gradescope section).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="write the autograder zip to upload (it holds the hidden test split)")
    build.add_argument("--out", required=True, metavar="ZIP", help="the zip to write")
    _add_platform_build_options(build, defaults, "keep it below the container's")
    build.add_argument("--score-visibility", choices=VISIBILITY, default=defaults["score_visibility"],
                       help="when students see their score on the hidden split (default %(default)s); the checks "
                            "of their upload are always shown at once")
    run = actions.add_parser("run", help="grade the submission in Gradescope's container (run_autograder calls it)")
    run.add_argument("--root", default="/autograder", help="Gradescope's folder (default %(default)s)")
    parser.set_defaults(run=run_gradescope)


def _add_platform_build_options(build, defaults, container_note):
    """What the platform builders share: the hidden data, the student's limits, the points rule."""
    build.add_argument("--test-data", required=True, metavar="PATH",
                       help="the hidden test CSV, or the folder holding test.csv")
    build.add_argument("--timeout", type=float, default=defaults["timeout_s"], metavar="S",
                       help="seconds the student's code may run (default %(default)s)")
    build.add_argument("--memory-mb", type=int, default=defaults["memory_mb"], metavar="MB",
                       help=f"memory for the student's code; {container_note} (default %(default)s)")
    _add_points_options(build, defaults)


def _platform_build(build, args, **extra):
    """Call a platform builder with the shared options; (what it returned, None), or (None, 2) on a refusal."""
    try:
        return build(test_data=args.test_data, out=args.out, timeout_s=args.timeout, memory_mb=args.memory_mb,
                     max_points=args.max_points, full_points_at=args.full_points_at,
                     zero_points_at=args.zero_points_at, **extra), None
    except GradingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None, 2


def run_gradescope(args):
    from .platforms import gradescope

    if args.action == "run":
        data = gradescope.run(args.root)
        print(f"Wrote {Path(args.root) / 'results' / 'results.json'}: score {data['score']}.")
        return 0
    built, refused = _platform_build(gradescope.build_autograder, args, score_visibility=args.score_visibility)
    if refused:
        return refused
    out, count = built
    print(f"Wrote {out} ({count} files, {out.stat().st_size / 1e6:.1f} MB): upload it as the autograder of a "
          f"programming assignment worth {args.max_points:g} points. It holds the hidden test split: keep it private.")
    return 0


def add_prairielearn(verbs):
    from .platforms.prairielearn import build_question

    defaults = build_question.__kwdefaults__
    parser = verbs.add_parser("prairielearn", help="build PrairieLearn's grader image and server files; grade inside "
                                                   "PrairieLearn",
                              description="PrairieLearn external grading (see the README's PrairieLearn section).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="write the image's Dockerfile, the course's serverFilesCourse/ (it holds "
                                             "the hidden test split) and an example question")
    build.add_argument("--out", required=True, metavar="DIR",
                       help="the folder to write (a new one, or an earlier build)")
    _add_platform_build_options(build, defaults, "keep it below the container's 2 GiB; the container gets 90 s "
                                                 "more than --timeout, at most 600 in all")
    build.add_argument("--image", default=defaults["image"], metavar="NAME",
                       help="the image's name on Docker Hub, written into info.json (default %(default)s)")
    run = actions.add_parser("run", help="grade the submission in PrairieLearn's container (the image's entrypoint "
                                         "calls it)")
    run.add_argument("--root", default="/grade", help="PrairieLearn's folder (default %(default)s)")
    parser.set_defaults(run=run_prairielearn)


def run_prairielearn(args):
    from .platforms import prairielearn

    if args.action == "run":
        data = prairielearn.run(args.root)
        print(f"Wrote {Path(args.root) / 'results' / 'results.json'}: score {data['score']:.4f}"
              f"{'' if data['gradable'] else ', not gradable'}.")
        return 0
    built, refused = _platform_build(prairielearn.build_question, args, image=args.image)
    if refused:
        return refused
    out, timeout = built
    print(f"Wrote {out}: image/ (docker buildx build --platform linux/amd64 -t {args.image} --push {out / 'image'}), "
          f"serverFilesCourse/{prairielearn.PACK_FOLDER}/ (it holds the hidden test split and the solutions: copy it "
          f"into the course repository, never into the image) and questions/{prairielearn.QUESTION_FOLDER}/ "
          f"(info.json with a container timeout of {timeout} s, question.html).")
    return 0


def add_canvas(verbs):
    from .platforms.canvas import fill_canvas   # imported here, as each platform's verb

    defaults = fill_canvas.__kwdefaults__
    parser = verbs.add_parser(
        "canvas", help="fill one assignment column of a Canvas gradebook export with the grades",
        description="Fill one assignment column of your Canvas gradebook export (Grades > Export) with the grades, "
                    "for Grades > Import. Students are matched by SIS Login ID; every other cell is kept as it is.")
    parser.add_argument("export", metavar="EXPORT.csv", help="the CSV Canvas exported, unchanged")
    parser.add_argument("--column", required=True, metavar="NAME",
                        help="the assignment column: its header ('Exercise 09 (1234)'), its title or its Canvas id")
    _add_fill_options(parser, defaults)
    parser.set_defaults(run=run_canvas)


def run_canvas(args):
    from .platforms.canvas import fill_canvas

    return _run_fill(fill_canvas, f"column {args.column!r}", "Import it in Canvas: Grades > Import, then check "
                     "the changes Canvas lists before you save them.",
                     export=args.export, column=args.column, grades=args.grades, out=args.out,
                     assignment=args.assignment, rescale=args.rescale, overwrite=args.overwrite)


def add_moodle(verbs):
    from .platforms.moodle import HEADERS, fill_moodle

    defaults = fill_moodle.__kwdefaults__
    parser = verbs.add_parser(
        "moodle", help="fill the Grade column of a Moodle offline grading worksheet with the grades",
        description="Fill the Grade column of your Moodle assignment's grading worksheet (View all submissions > "
                    "Download grading worksheet) with the grades, for Upload grading worksheet. Rows are matched "
                    "by participant id (in the names of Moodle's Download all submissions) or by email.")
    parser.add_argument("worksheet", metavar="WORKSHEET.csv", help="the worksheet Moodle made, unchanged")
    parser.add_argument("--feedback", action="store_true", default=defaults["feedback"],
                        help="also fill the Feedback comments column with each result's summary")
    parser.add_argument("--header", action="append", default=[], metavar="ROLE=TEXT",
                        help="a header of a site in another language than English or German, e.g. grade=Note; "
                             f"roles: {', '.join(HEADERS)}")
    _add_fill_options(parser, defaults)
    parser.set_defaults(run=run_moodle)


def run_moodle(args):
    from .platforms.moodle import fill_moodle

    headers = dict(pair.split("=", 1) for pair in args.header if "=" in pair)
    if len(headers) != len(args.header):
        print(f"error: --header takes ROLE=TEXT, e.g. grade=Note; got {args.header}", file=sys.stderr)
        return 2
    return _run_fill(fill_moodle, "the Grade column", "Upload it in Moodle: View all submissions > Grading action > "
                     "Upload grading worksheet, and check the confirmation page before you confirm.",
                     worksheet=args.worksheet, grades=args.grades, out=args.out, assignment=args.assignment,
                     feedback=args.feedback, rescale=args.rescale, headers=headers, overwrite=args.overwrite)


def _add_fill_options(parser, defaults):
    """The options canvas and moodle share."""
    parser.add_argument("--grades", required=True, metavar="SOURCE",
                        help="the results folder of python -m grader grade (its --out), or the grades.csv of "
                             "nbgrader export")
    parser.add_argument("--assignment", default=defaults["assignment"], metavar="NAME",
                        help="the assignment's rows of nbgrader's CSV, when it holds several")
    parser.add_argument("--out", required=True, metavar="FILLED.csv", help="where to write the filled copy")
    parser.add_argument("--rescale", action="store_true", default=defaults["rescale"],
                        help="convert the grades' points into the gradebook's maximum (say 100 into 10)")
    parser.add_argument("--overwrite", action="store_true", default=defaults["overwrite"],
                        help="allow --out to be the input file itself")


def _run_fill(fill, what, how_to_import, **kwargs):
    """Run a platform's fill function and print what it did; exit 2 on its GradebookError."""
    from .platforms.grades_source import GradebookError

    try:
        report = fill(**kwargs)
    except GradebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Filled {len(report.filled)} grade(s) into {what} of {report.out}"
          + (f"; {len(report.unchanged)} already had that grade" if report.unchanged else "") + ".")
    for title, names in [("Students in the gradebook without a grade", report.students_without_grade),
                         ("Grades with no student in the gradebook", [f"{g.name} ({g.points:g} points, {g.source})"
                                                                      for g in report.grades_without_row])]:
        if names:
            print(f"{title} ({len(names)}):")
            print("\n".join(f"  {name}" for name in names))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(how_to_import)
    return 0


def add_report(verbs):
    from .report import build_report   # imported here: it imports matplotlib

    defaults = build_report.__kwdefaults__
    parser = verbs.add_parser(
        "report", help="write the class report, one HTML page for instructors",
        description="Write the class report: one self-contained HTML page (no network, no JavaScript) with the "
                    "score distribution, the checks that failed and why, the error of each keypoint, the best "
                    "models on hidden faces, the isolation used, and submissions that are alike. For instructors "
                    "only: it shows hidden test faces.")
    parser.add_argument("results", metavar="RESULTS_DIR", help="the results folder of python -m grader grade")
    parser.add_argument("--test-data", required=True, metavar="PATH",
                        help="the hidden test CSV the results were graded on, or the folder holding test.csv")
    parser.add_argument("--submissions", nargs="+", default=defaults["submissions"], metavar="PATH",
                        help="the submissions as given to grade, to compare their model files and code "
                             "(default: the paths the results recorded, where they still are)")
    parser.add_argument("--out", required=True, metavar="REPORT.html", help="the page to write")
    parser.set_defaults(run=run_report)


def run_report(args):
    from .report import ReportError, build_report

    try:
        out = build_report(results_dir=args.results, test_data=args.test_data, out=args.out,
                           submissions=args.submissions)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {out}: for instructors only (it shows hidden test faces); open it in a browser.")
    return 0


def add_dataset(verbs):
    from .dataset_build import KINDS, build_dataset   # imported here, as the platforms' verbs

    defaults = build_dataset.__kwdefaults__
    parser = verbs.add_parser(
        "dataset", help="build the course data zips from public data (Udacity P1, Kaggle or I2DL)",
        description="Build facial_keypoints.zip (training.csv, val.csv) and facial_keypoints_test.zip (test.csv) "
                    "from public data, reproducibly: the same source and seed give the same CSVs. See the README, "
                    "'Making the course data'.",
        epilog="udacity: the data/ folder of https://github.com/udacity/P1_Facial_Keypoints (or its zip), split by "
               "person; kaggle: Kaggle's training.csv, split by face; i2dl: I2DL's exercise 9 zip, its val split kept")
    parser.add_argument("source", metavar="SOURCE", help="a zip, a folder, a CSV file or a URL")
    parser.add_argument("--from", dest="kind", required=True, choices=KINDS, help="what SOURCE holds")
    parser.add_argument("--out", default=defaults["out_dir"], metavar="DIR",
                        help="folder for the zips, SHA256SUMS and build.json (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="seed of the split (default %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=defaults["val_fraction"], metavar="F",
                        help="share of the faces for val, in whole people (default %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=defaults["test_fraction"], metavar="F",
                        help="share of the faces for the hidden test split (default %(default)s)")
    parser.add_argument("--max-upscale", type=float, default=defaults["max_upscale"], metavar="X",
                        help="udacity: drop faces the crop would enlarge more than X times (default %(default)s)")
    parser.add_argument("--force", action="store_true", default=defaults["force"],
                        help="replace the zips DIR already holds")
    parser.set_defaults(run=run_dataset)


def run_dataset(args):
    from .dataset_build import DatasetBuildError, build_dataset
    from .dataset_sources import DatasetSourceError

    try:
        report = build_dataset(source=args.source, kind=args.kind, out_dir=args.out, seed=args.seed,
                               val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                               max_upscale=args.max_upscale, force=args.force, progress=True)
    except (DatasetBuildError, DatasetSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


VERBS = {"grade": add_grade, "autograde": add_autograde, "merge": add_merge, "release": add_release,
         "bundle": add_bundle, "gradescope": add_gradescope,
         "prairielearn": add_prairielearn, "canvas": add_canvas, "moodle": add_moodle,
         "report": add_report, "dataset": add_dataset}


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
