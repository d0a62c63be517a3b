"""
The class report: one self-contained HTML page about a graded class, for instructors only.

    python -m grader report results/ --test-data datasets/facial_keypoints_test \
        --submissions submissions/ --out build/report.html

It reads what grade() wrote (results/<name>.json and results/predictions/<name>.npy)
and the hidden test CSV, and shows: the score distribution with the pass line; how
many submissions failed at each check, and why; the error of each keypoint for the
median and the best models; the best models' predictions on a few hidden faces; the
isolation each submission was graded under; and submissions that are alike, for the
instructor to look at (grader/similarity.py).

The figures are PNGs made with matplotlib's Agg backend and inlined as data: URIs:
the page needs no network and no JavaScript. Every string that a student controls
(names, messages, paths) is HTML-escaped, and the page's Content-Security-Policy
allows no script and no outside resource, in case one ever were not.
"""
import base64
import datetime
import html
import io
import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import similarity
from .api import GradingConfigError, find_submissions, test_csv_path
from .messages import TITLES
from .points import PointsRule
from .results import LEADERBOARD_MAX, PREDICTIONS, read_results, write_text_atomic
from .trusted import (KEYPOINT_NAMES, DataFormatError, keypoint_errors, pixels_to_unit, read_keypoints_csv,
                      unit_to_pixels)

BEST_MODELS = 3         # models shown in the keypoint table and on the faces
FACES = 6               # hidden faces drawn: half the best model's hardest, half spread over the split
MESSAGES_SHOWN = 5      # most common messages of each failed check
MESSAGE_CHARS = 200     # a message's first line, shortened to this
NAMES_SHOWN = 10        # names listed beside a message (grades.csv has them all)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"   # no script, nothing fetched


class ReportError(ValueError):
    """The report cannot be built (no results, no test file...); the message says what to fix."""


@dataclass
class GradedClass:
    """
    What the report is made of.

    - results: Every Result of the folder, sorted by name
    - ranked: The scored ones, best first
    - rule: The PointsRule most results were graded with (its full_at is the pass line)
    - images: uint8 array (N, 96, 96), the hidden faces
    - targets: float32 array (N, 15, 2), their keypoints in pixels
    - predictions: Dict {name: float32 array (N, 30)} in unit coordinates, for the scored results that have them
    - sources: Dict {name: path of the submission .zip or folder}, for those we found
    """
    results: list
    ranked: list
    rule: PointsRule
    images: np.ndarray
    targets: np.ndarray
    predictions: dict
    sources: dict


def build_report(*, results_dir, test_data, out, submissions=None, best=BEST_MODELS, faces=FACES):
    """
    Write the class report.

    Inputs:
    - results_dir: A folder written by grade() (or merge)
    - test_data: The hidden test CSV, or the folder holding test.csv: the one the results were graded on
    - out: The HTML file to write (its folder is created)
    - submissions: Paths of the submissions, as given to grade(), to compare their model files and code;
      None: the paths the results recorded (extra_data.source), where they still are
    - best: How many of the best models to show
    - faces: How many hidden faces to draw

    Returns:
    - Path of the page written

    Raises ReportError when the results or the test file cannot be read.
    """
    graded = read_class(results_dir, test_data, submissions)
    sections = [scores_section(graded), checks_section(graded), keypoints_section(graded, best),
                faces_section(graded, best, faces), isolation_section(graded), alike_section(graded)]
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, page(sections, results_dir, len(graded.results)))
    except OSError as error:
        raise ReportError(f"Cannot write {out} ({error.strerror or error}). Pass --out a file you can write.") \
            from None
    return out


def read_class(results_dir, test_data, submissions):
    """The GradedClass of a results folder, the hidden test CSV and the submissions' paths (see build_report)."""
    if not Path(results_dir).is_dir():
        raise ReportError(f"{results_dir} is not a folder of results (the --out of python -m grader grade)")
    results = read_results(results_dir)
    if not results:
        raise ReportError(f"{results_dir} holds no results of this grader")
    try:
        data = read_keypoints_csv(test_csv_path(test_data))
        sources = dict(find_submissions(submissions)) if submissions else recorded_sources(results)
    except (GradingConfigError, DataFormatError, OSError) as error:
        raise ReportError(str(error)) from None
    ranked = sorted((r for r in results if r.scored), key=lambda r: (-r.raw_score, r.submission))
    rule = most_common_rule(results)
    predictions = read_predictions(Path(results_dir), ranked, len(data.images))
    return GradedClass(results, ranked, rule, data.images, data.keypoints, predictions, sources)


def most_common_rule(results):
    """The PointsRule most results were graded with (the default rule when none says)."""
    rules = Counter(tuple(sorted(r.extra["points_rule"].items())) for r in results
                    if isinstance(r.extra.get("points_rule"), dict))
    try:
        return PointsRule(**dict(rules.most_common(1)[0][0])) if rules else PointsRule()
    except (TypeError, ValueError):   # a result file edited by hand
        return PointsRule()


def recorded_sources(results):
    """{name: path} of the submissions whose recorded path (extra_data.source) is still there."""
    paths = {r.submission: Path(r.extra.get("source") or "") for r in results}
    return {name: path for name, path in paths.items() if str(path) not in ("", ".") and path.exists()}


def read_predictions(results_dir, ranked, count):
    """{name: float32 array (count, 30)} of the scored results' predictions that fit the test file."""
    predictions = {}
    for result in ranked:
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", result.submission):   # grade() names no other
            continue
        path = results_dir / PREDICTIONS / f"{result.submission}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            continue
        if array.shape == (count, 30) and np.isfinite(array).all():   # graded on another test file: left out
            predictions[result.submission] = array.astype(np.float32)
    return predictions


# The sections. Each returns (id, title, HTML body).

def scores_section(graded):
    """The distribution of 1/(2*MSE) with the pass line, and the counts."""
    full_at, ranked = graded.rule.full_at, graded.ranked
    passed = sum(r.raw_score >= full_at for r in ranked)
    counts = table(["submissions", "scored", "passed (score ≥ pass line)", "scored below the line", "not scored"],
                   [[len(graded.results), len(ranked), passed, len(ranked) - passed, len(graded.results) - len(ranked)]])
    body = paragraph(f"Score 1/(2·MSE) on the {len(graded.images)} hidden test faces, in unit coordinates. "
                     f"Pass line: {full_at:g} ({graded.rule.describe()}).") + counts
    if not ranked:
        return "scores", "Scores", body + paragraph("No submission was scored.")
    scores = np.array([min(r.raw_score, LEADERBOARD_MAX) for r in ranked])
    body += image(score_histogram(scores, full_at), "Histogram of the class's scores, log scale, with the pass line")
    body += paragraph(f"Median {np.median(scores):.1f}; best {scores[0]:.1f}. The best models:")
    body += table(["rank", "submission", "score 1/(2·MSE)", "points"],
                  [[rank, r.submission, f"{r.raw_score:.2f}", f"{r.score:g}"]
                   for rank, r in enumerate(ranked[:BEST_MODELS * 2], start=1)])
    return "scores", "Scores", body


def checks_section(graded):
    """How many submissions failed at each check, and the most common messages of each."""
    failed, reasons = Counter(), {}   # title -> submissions; title -> {first line: [names]}
    for result in graded.results:
        row = None if result.scored else result.failed_check()
        if row is not None:
            failed[row.name] += 1
            reasons.setdefault(row.name, {}).setdefault(first_line(row.output), []).append(result.submission)
    below = sum(r.raw_score < graded.rule.full_at for r in graded.ranked)
    titles = [*TITLES.values(), *sorted(set(failed) - set(TITLES.values()))]   # in the order they run
    rows = [[title, failed[title] if title != TITLES["score"] else f"{below} scored below the pass line"]
            for title in titles]
    body = paragraph("The checks run in this order; a submission stops at the first that fails.") \
        + table(["check", "submissions that failed here"], rows)
    for title in titles:
        if failed[title]:
            common = sorted(reasons[title].items(), key=lambda item: -len(item[1]))[:MESSAGES_SHOWN]
            body += f"<h3>{escape(title)}: {failed[title]}</h3>" + table(
                ["count", "message (first line)", "submissions"],
                [[len(names), text, names_list(names)] for text, names in common])
            rest = len(reasons[title]) - len(common)
            if rest > 0:
                body += paragraph(f"And {rest} other message(s): see grades.csv.")
    errors = [r.submission for r in graded.results if r.extra.get("grader_error")]
    if errors:
        body += paragraph(f"{len(errors)} failed through the grader's own fault (graded again on the next run): "
                          + ", ".join(errors))
    return "checks", "Checks that failed", body


def keypoints_section(graded, best):
    """The error of each keypoint, in pixels, for the best models, the median model and the class."""
    errors = {r.submission: e for r in graded.ranked if (e := result_keypoint_errors(graded, r)) is not None}
    ranked = [r for r in graded.ranked if r.submission in errors]
    if not ranked:
        return "keypoints", "Error of each keypoint", paragraph(
            "No scored result has errors per keypoint (the hidden split has fewer than 20 faces, or nothing "
            "was scored).")
    rank = {r.submission: number for number, r in enumerate(ranked, start=1)}
    median = ranked[(len(ranked) - 1) // 2].submission
    shown = list(dict.fromkeys([*(r.submission for r in ranked[:best]), median]))   # it may be among the best
    class_median = np.median([errors[name] for name in rank], axis=0)
    headers = ["keypoint", *(f"{name} (#{rank[name]})" for name in shown), "class median"]
    rows = [[keypoint, *(f"{errors[name][k]:.1f}" for name in shown), f"{class_median[k]:.1f}"]
            for k, keypoint in enumerate(KEYPOINT_NAMES)]
    body = paragraph(f"Root mean squared distance between predicted and true point, in pixels of the 96×96 face, "
                     f"over all hidden faces. Median model: {median} (#{rank[median]} of {len(ranked)}); class "
                     f"median: the median over the {len(ranked)} scored models, per keypoint.")
    chart = keypoint_chart([errors[ranked[0].submission], errors[median], class_median])
    return "keypoints", "Error of each keypoint", body + image(
        chart, "Error of each keypoint: best model, median model, class median") + table(headers, rows)


def faces_section(graded, best, faces):
    """The best models' predictions on a few hidden faces, against the true points."""
    models = [r for r in graded.ranked if r.submission in graded.predictions][:best]
    if not models:
        return "faces", "Best models on hidden faces", paragraph(
            "No scored submission has predictions for this test file (results/predictions/*.npy).")
    predicted = [graded.predictions[r.submission].reshape(-1, 15, 2) for r in models]
    chosen = choose_faces(face_errors(predicted[0], graded.targets), faces)
    body = paragraph("Dots: the true points; crosses: the predictions (red: the subject's left, blue: right, green: "
                     "midline). Each face's title is the model's mean error on it, in pixels. Columns: the best "
                     "model's hardest faces first, then faces spread over the split. Rows, top to bottom: "
                     + ", ".join(f"{r.submission} ({r.raw_score:.1f})" for r in models) + ".")
    return "faces", "Best models on hidden faces", body + image(
        face_grid(graded, predicted, chosen), "The best models' predictions on hidden faces")


def isolation_section(graded):
    """The isolation each submission was graded under; those not in the jail, by name."""
    isolation = {r.submission: r.extra.get("isolation") or "unknown" for r in graded.results}
    body = table(["isolation", "submissions"], Counter(isolation.values()).most_common())
    others = [r for r in graded.results if isolation[r.submission] != "jail"]
    if others:
        body += paragraph("Not graded in the jail:") + table(
            ["submission", "isolation", "what it means"],
            [[r.submission, isolation[r.submission], r.extra.get("isolation_text", "")] for r in others])
    else:
        body += paragraph("Every submission was graded in the jail.")
    return "isolation", "Isolation", body


def alike_section(graded):
    """Submissions that are alike, for the instructor to look at: the same model file, predictions, code."""
    body = paragraph("These submissions are alike in ways worth a look. This is not a verdict: a likeness can "
                     "have an honest cause (a team that may share, a student who submitted under two names, code "
                     "from the same tutorial), and the grader cannot tell. Look at the submissions, and talk to the "
                     "students, before you conclude anything.")
    body += "<h3>The same model file</h3>"
    if graded.sources:
        groups = similarity.same_model_files(graded.sources)
        body += table(["submissions", "SHA-256 of models/keypoint_model.pt"],
                      [[", ".join(names), digest[:16] + "…"] for digest, names in groups]) if groups \
            else paragraph(f"No two of the {len(graded.sources)} submissions read have the same model file.")
    else:
        body += paragraph(NO_SOURCES)
    pairs = similarity.alike_predictions(graded.predictions)
    body += "<h3>The same predictions on the hidden faces</h3>" + paragraph(
        f"Pairs whose predictions differ by at most {similarity.PREDICTION_RMS:g} (root mean square, unit "
        f"coordinates; 1 px = 1/48), of the {len(graded.predictions)} scored submissions with predictions.")
    body += table(["submission", "submission", "RMS difference", "largest difference"],
                  [[a, b, f"{rms:.2g}", f"{largest:.2g}"] for a, b, rms, largest in pairs]) if pairs \
        else paragraph("None.")
    body += "<h3>Nearly the same code</h3>"
    if graded.sources:
        code = similarity.alike_code(graded.sources)
        body += paragraph(
            f"In the files students edit ({', '.join(similarity.EDITED_FILES)}), with comments, layout and the "
            f"students' own names set aside, and without the code everyone shares (the starter, the reference "
            f"solution, idioms in many submissions): pairs with a Jaccard similarity of "
            f"{similarity.CODE_JACCARD:g} or more of what is left. A renamed copy scores near 1.")
        body += table(["submission", "submission", "similarity", "shared passages", "files"],
                      [[p.first, p.second, f"{p.jaccard:.2f}", p.shared, ", ".join(p.files)] for p in code]) \
            if code else paragraph(f"No pair among the {len(graded.sources)} submissions read.")
    else:
        body += paragraph(NO_SOURCES)
    return "alike", "Submissions that are alike (for you to look at)", body


NO_SOURCES = ("Not checked: the submissions were not found. Pass --submissions with the paths you graded "
              "(the paths the results recorded are not there).")


# What the sections compute.

def result_keypoint_errors(graded, result):
    """A result's error of each keypoint in pixels (15,): as recorded, else from its predictions; or None."""
    recorded = result.extra.get("keypoint_errors_px")
    if recorded:
        return np.array([recorded.get(name, np.nan) for name in KEYPOINT_NAMES])
    if result.submission in graded.predictions:
        predicted = torch.from_numpy(graded.predictions[result.submission])
        return keypoint_errors(predicted, pixels_to_unit(torch.from_numpy(graded.targets))).numpy().round(1)
    return None


def face_errors(predicted, targets):
    """Mean distance in pixels between predicted (N, 15, 2) unit coordinates and targets (N, 15, 2) pixels: (N,)."""
    pixels = unit_to_pixels(predicted)
    return np.linalg.norm(pixels - targets, axis=2).mean(axis=1)


def choose_faces(errors, count):
    """Indices of `count` faces: half the hardest (largest errors), then others spread evenly over the split."""
    hardest = list(np.argsort(-errors)[: count // 2])
    spread = [i for i in np.linspace(0, len(errors) - 1, count).round().astype(int) if i not in hardest]
    return [int(i) for i in (hardest + spread)[:count]]


def names_list(names, shown=NAMES_SHOWN):
    """Some names, comma-separated, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def first_line(text):
    """A message's first line, shortened (grouping key and what the page shows)."""
    lines = (text or "").strip().splitlines()
    return textwrap.shorten(lines[0] if lines else "(no message)", MESSAGE_CHARS, placeholder=" …")


# Figures: matplotlib's Agg backend, no pyplot (no global state, no display). matplotlib is imported where a
# figure is drawn: at the top it would cost every verb of `python -m grader` a second, as the CLI reads this
# module's defaults.

def score_histogram(scores, full_at):
    """A Figure: the histogram of the scores on a log axis, passed in green, with the pass line."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    ax = figure.add_subplot()
    low, high = min(scores.min(), full_at) / 1.5, max(scores.max(), full_at) * 1.5
    bins = np.geomspace(low, high, 31)
    ax.hist([scores[scores < full_at], scores[scores >= full_at]], bins, stacked=True,
            color=["tab:red", "tab:green"], label=["below the line", "passed"])
    ax.axvline(full_at, color="black", linestyle="--", label=f"pass line {full_at:g}")
    ax.set(xscale="log", xlabel="score 1/(2·MSE), log scale", ylabel="submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # counts of submissions: no 2.5
    ax.legend()
    return figure


def keypoint_chart(errors):
    """A Figure: horizontal bars of the error of each keypoint, for the best model, median model, class median."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(KEYPOINT_NAMES))
    for offset, values, label in zip((-0.27, 0, 0.27), errors, ("best model", "median model", "class median")):
        ax.barh(y + offset, values, height=0.27, label=label)
    ax.set(yticks=y, yticklabels=KEYPOINT_NAMES, xlabel="RMS error, pixels")
    ax.invert_yaxis()
    ax.legend()
    return figure


def face_grid(graded, predicted, chosen):
    """A Figure: a row per model, a column per chosen face, true points (dots) and predictions (crosses)."""
    from matplotlib.figure import Figure

    from exercise_code.visualization import show_all_keypoints   # the solved package (grader.trusted checked)

    rows, columns = len(predicted), len(chosen)
    figure = Figure(figsize=(1.7 * columns, 1.8 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    targets = pixels_to_unit(graded.targets)
    for row, model in enumerate(predicted):
        errors = face_errors(model, graded.targets)
        for ax, face in zip(axes[row], chosen):
            show_all_keypoints(graded.images[face] / 255.0, torch.from_numpy(targets[face]),
                               torch.from_numpy(model[face]), ax=ax, legend=False)
            ax.set_title(f"face {face}: {errors[face]:.1f} px", fontsize=7)
    return figure


# HTML. Every cell and sentence goes through escape(); only the page's own tags are written raw.

def escape(value):
    return html.escape(str(value), quote=True)


def paragraph(text):
    return f"<p>{escape(text)}</p>\n"


def table(headers, rows):
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def image(figure, alt):
    """An <img> holding the figure as a PNG data: URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}"></figure>\n'


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
figure { margin: 0.5rem 0; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }
"""


def page(sections, results_dir, count):
    """The whole page: a head with no script allowed, a warning, a contents list, then the sections."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    contents = "".join(f'<li><a href="#{id_}">{escape(title)}</a></li>' for id_, title, _ in sections)
    body = "".join(f'<section id="{id_}"><h2>{escape(title)}</h2>\n{html_}</section>\n'
                   for id_, title, html_ in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f"<title>Class report: facial keypoints</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>Class report: facial keypoints</h1>\n"
            f'<p class="warning">For instructors only: this page shows hidden test faces and every student\'s '
            f"results. Do not share it with students.</p>\n"
            + paragraph(f"{count} results in {results_dir}, reported {when}.")
            + f"<ul>{contents}</ul>\n{body}</body>\n</html>\n")
