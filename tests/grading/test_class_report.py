"""
The class report (grader/report.py, grader/similarity.py): a small class is graded,
then reported on. Its students:

- alice: the valid model, with the solved exercise_code
- bob: alice's model file, copied byte for byte (so his predictions are hers too)
- dave: his own small CNN in keypoint_nn.py, untrained (scored, below the pass line)
- carol: dave's keypoint_nn.py with every name of his renamed and the comments rewritten, her own weights
- erin: her own, different CNN, untrained: honest, like no one
- frank: his code raises at import, with HTML in the message

The report is written to a temporary folder: it shows hidden faces and never goes into the repo.
"""
import base64
import copy
import io
import re
import shutil
import zipfile

import pytest
import torch
from PIL import Image

import grader.cli as cli
from exercise_code.util.model_files import save_model
from exercise_code.util.submission import MODEL_ENTRY
from grader import similarity
from grader.api import grade
from grader.jail import DESCRIPTIONS
from grader.release import strip_solutions
from grader.report import ReportError, build_report
from grader.results import read_result, write_json_atomic
from grader.trusted import PACKAGE
from grading_scenarios import valid_workspace, zip_folder

STUB = "        # YOUR CODE HERE\n        raise NotImplementedError()\n"

DAVE_INIT = '''\
        # two conv blocks shrink 96 -> 6, then one linear layer reads the keypoints
        width = hparams.get("width", 8)

        def conv_block(c_in, c_out, kernel):
            return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(4)]

        self.features = nn.Sequential(*conv_block(1, width, 5), *conv_block(width, 2 * width, 3))
        self.dropout = nn.Dropout(hparams.get("dropout", 0.1))
        self.head = nn.Linear(2 * width * 6 * 6, 2 * NUM_KEYPOINTS)
'''
DAVE_FORWARD = '''\
        features = self.features(x)               # (N, 2w, 6, 6)
        flat = self.dropout(features.flatten(1))  # (N, 72w)
        out = torch.tanh(self.head(flat))         # keypoints stay inside the image
'''
# carol's copy: dave's code, every name of his renamed, the comments rewritten, nothing reordered
RENAMED = {"width": "base_channels", "conv_block": "make_stage", "c_in": "inputs", "c_out": "outputs",
           "kernel": "ksize", "features": "trunk", "dropout": "drop", "head": "regressor", "flat": "vector"}
ERIN_INIT = '''\
        channels = hparams.get("channels", [8, 16, 32])
        layers, previous = [], 1
        for size in channels:   # each stage halves the map
            layers += [nn.Conv2d(previous, size, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(size), nn.LeakyReLU(0.1)]
            previous = size
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, 30)
'''
ERIN_FORWARD = '''\
        pooled = self.pool(self.body(x)).view(x.shape[0], -1)
        out = self.fc(pooled) * 0.5
'''
FRANK_INIT = "raise RuntimeError('<script>alert(\"frank\")</script> boom')\n"
EVIL_NAME = '<img src=x onerror="alert(1)">mallory'


def renamed(code, names=RENAMED):
    """code with each name replaced (whole words only), and its comments rewritten."""
    for old, new in names.items():
        code = re.sub(rf"\b{old}\b", new, code)
    return re.sub(r"#.*", "# my own design", code)


def own_network(init, forward):
    """The starter's keypoint_nn.py with a student's __init__ and forward filled in."""
    starter = strip_solutions((PACKAGE / "networks" / "keypoint_nn.py").read_text())
    assert starter.count(STUB) == 3
    return starter.replace(STUB, init, 1).replace(STUB, forward, 1)


def perturbed(model, seed=4):
    """A copy of model with noise on its weights: another student's model file."""
    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model


def build_model(code, hparams, seed):
    """The KeypointModel of a student's keypoint_nn.py, initialized with a seed (not trained)."""
    namespace = {}
    exec(compile(code.replace("from ..keypoints", "from exercise_code.keypoints"), "keypoint_nn.py", "exec"),
         namespace)
    torch.manual_seed(seed)
    return namespace["KeypointModel"](hparams).eval()


def student(root, name, model, network=None, hparams=None, seed=0):
    """A student's workspace zipped to root/submissions/<name>.zip; their own network code and model if given."""
    work = valid_workspace(root / "workspaces" / name, model)
    if network is not None:
        (work / "exercise_code" / "networks" / "keypoint_nn.py").write_text(network)
        save_model(build_model(network, hparams, seed), work / MODEL_ENTRY)
    (root / "submissions").mkdir(exist_ok=True)
    return work, root / "submissions" / f"{name}.zip"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, valid_model, hidden_subset, isolation):
    """The class above, graded. Returns (root, results folder, submissions folder)."""
    root = tmp_path_factory.mktemp("class")
    alice, alice_zip = student(root, "alice", valid_model)
    zip_folder(alice, alice_zip)
    bob, bob_zip = student(root, "bob", valid_model)
    shutil.copyfile(alice / MODEL_ENTRY, bob / MODEL_ENTRY)   # the copied model file
    zip_folder(bob, bob_zip)
    dave_code = own_network(DAVE_INIT, DAVE_FORWARD)
    zip_folder(*student(root, "dave", valid_model, dave_code, {"width": 8, "dropout": 0.1}, seed=1))
    carol_code = own_network(renamed(DAVE_INIT), renamed(DAVE_FORWARD))
    zip_folder(*student(root, "carol", valid_model, carol_code, {"base_channels": 8, "drop": 0.1}, seed=2))
    erin_code = own_network(ERIN_INIT, ERIN_FORWARD)
    zip_folder(*student(root, "erin", valid_model, erin_code, {"channels": [8, 16, 32]}, seed=3))
    frank, frank_zip = student(root, "frank", valid_model)
    save_model(perturbed(valid_model), frank / MODEL_ENTRY)   # his own weights, not alice's file
    (frank / "exercise_code" / "networks" / "__init__.py").write_text(FRANK_INIT)
    zip_folder(frank, frank_zip)

    results = root / "results"
    grade(submissions=[root / "submissions"], test_data=hidden_subset, out_dir=results, isolation=isolation)
    # A result with HTML in its name, not graded in the jail: grade() makes names safe for file names,
    # but a results folder may hold files from elsewhere (merged, or edited).
    evil = read_result(results / "frank.json")
    evil.submission, evil.extra["isolation"], evil.extra["isolation_text"] = EVIL_NAME, "none", DESCRIPTIONS["none"]
    write_json_atomic(results / "mallory.json", evil)
    return root, results, root / "submissions"


@pytest.fixture(scope="module")
def report(graded_class, hidden_subset, tmp_path_factory):
    """The class report's HTML, built with the submissions' paths."""
    root, results, submissions = graded_class
    out = build_report(results_dir=results, test_data=hidden_subset, out=root / "build" / "report.html",
                       submissions=[submissions])
    return out.read_text()


def section(page, name):
    """The HTML of one section of the page."""
    match = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert match, f"no section {name}"
    return match[1]


def subsection(text, heading):
    """The HTML below an <h3> heading, up to the next one."""
    return text.split(f"<h3>{heading}</h3>", 1)[1].split("<h3>", 1)[0]


def rows(text):
    """The tables' rows (not their headers) in some HTML, each as a list of its cells' (escaped) text."""
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", text, re.S)]
    return [row for row in cells if row]


def test_report_has_every_section(report):
    """Does the page hold the score distribution, the checks, the keypoints, the faces, isolation and likeness?"""
    for name in ("scores", "checks", "keypoints", "faces", "isolation", "alike"):
        section(report, name)
    assert "For instructors only" in report
    assert "<script" not in report.lower()


def test_scores_count_the_class(report):
    """Are the counts right: 7 results, 5 scored, 2 passed (alice and bob), 3 below the line, 2 not scored?"""
    scores = section(report, "scores")
    assert rows(scores)[0] == ["7", "5", "2", "3", "2"]
    assert "Pass line: 100" in scores and "<img" in scores
    best = [row[1] for row in rows(scores)[1:]]
    assert set(best[:2]) == {"alice", "bob"} and set(best) == {"alice", "bob", "carol", "dave", "erin"}


def test_checks_say_where_and_why(report):
    """Is frank's failure counted at the code check, with its message shortened and escaped?"""
    checks = section(report, "checks")
    code_row = next(row for row in rows(checks) if row[0].startswith("Your exercise_code builds"))
    assert code_row[1] == "2"   # frank, and the edited copy of his result
    assert "RuntimeError: &lt;script&gt;alert(&quot;frank&quot;)&lt;/script&gt; boom" in checks
    count, _, names = next(row for row in rows(checks) if len(row) == 3)   # the one message, and who got it
    assert count == "2" and "frank" in names and "mallory" in names
    assert "3 scored below the pass line" in checks


def test_keypoint_errors_of_best_and_median(report, graded_class):
    """Does the keypoint table have a row per keypoint, with the best models' and the class median's errors?"""
    keypoints = section(report, "keypoints")
    table = rows(keypoints)
    assert len(table) == 15 and table[0][0] == "left_eye_center"
    alice = read_result(graded_class[1] / "alice.json")
    assert float(table[0][1]) == alice.extra["keypoint_errors_px"]["left_eye_center"]
    assert "Median model:" in keypoints and "<img" in keypoints


def test_faces_show_the_best_models(report):
    """Are the best models' predictions drawn on hidden faces, named best first?"""
    faces = section(report, "faces")
    assert "<img" in faces
    order = re.search(r"Rows, top to bottom: (.*?)\.</p>", faces)[1]
    assert order.split(" (")[0] in ("alice", "bob")


def test_isolation_lists_what_was_not_jailed(report):
    """Are the isolations counted, and is the one result not graded in the jail listed by its (escaped) name?"""
    isolation = section(report, "isolation")
    assert ["jail", "6"] in rows(isolation) and ["none", "1"] in rows(isolation)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;mallory" in isolation


def test_html_in_a_name_is_escaped(report):
    """Is a name with HTML shown as text everywhere, never as a tag?"""
    assert EVIL_NAME not in report and "onerror=\"alert" not in report
    assert report.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;mallory") == 2   # checks, isolation
    assert 'http-equiv="Content-Security-Policy"' in report


def test_copied_model_and_renamed_code_are_listed_as_alike(report):
    """Are bob (alice's model file) and carol (dave's code, renamed) listed, and the honest erin nowhere?"""
    alike = section(report, "alike")
    assert "not a verdict" in alike
    assert rows(subsection(alike, "The same model file"))[0][0] == "alice, bob"
    assert [row[:2] for row in rows(subsection(alike, "The same predictions on the hidden faces"))] \
        == [["alice", "bob"]]
    code = rows(subsection(alike, "Nearly the same code"))
    assert ["carol", "dave"] in [row[:2] for row in code]
    assert float(code[0][2]) > 0.9 and "exercise_code/networks/keypoint_nn.py" in code[0][4]
    assert "erin" not in alike


def test_every_image_is_an_inline_png(report):
    """Does every <img> hold a valid PNG as a data: URI (nothing fetched; the page works offline)?"""
    sources = re.findall(r'<img src="([^"]*)"', report)
    assert len(sources) == 3   # the histogram, the keypoint chart and the faces
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        picture.verify()
        assert picture.format == "PNG" and min(picture.size) > 50


def test_code_similarity_ignores_shared_code(graded_class):
    """Are alice, bob and frank (solution and starter code only) compared with no one, and erin unlike dave?"""
    sources = {path.stem: path for path in (graded_class[0] / "submissions").glob("*.zip")}
    assert not similarity.own_ngrams(sources["alice"])   # the solution's code is everyone's
    pairs = {(p.first, p.second): p.jaccard for p in similarity.alike_code(sources, threshold=0.0)}
    assert ("carol", "dave") in pairs and all("alice" not in pair and "bob" not in pair for pair in pairs)
    assert pairs.get(("dave", "erin"), 0) < 0.2 and pairs.get(("carol", "erin"), 0) < 0.2


def test_report_from_recorded_paths(graded_class, hidden_subset, tmp_path):
    """Without --submissions, are the paths the results recorded used (the copied model still found)?"""
    _, results, _ = graded_class
    page = build_report(results_dir=results, test_data=hidden_subset, out=tmp_path / "report.html").read_text()
    groups = [row[0] for row in rows(subsection(section(page, "alike"), "The same model file"))]
    assert "alice, bob" in groups   # (and frank's path, which his edited copy names too)


def test_report_verb(graded_class, hidden_subset, tmp_path, capsys):
    """Does `python -m grader report` write the page, and refuse a folder without results (exit 2)?"""
    root, results, submissions = graded_class
    out = tmp_path / "out" / "report.html"
    assert cli.main(["report", str(results), "--test-data", str(hidden_subset), "--submissions",
                     str(submissions), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path), "--test-data", str(hidden_subset), "--out", str(out)]) == 2
    assert "holds no results" in capsys.readouterr().err
    with pytest.raises(ReportError, match="not a folder of results"):
        build_report(results_dir=tmp_path / "missing", test_data=hidden_subset, out=out)


def test_tokens_ignore_names_comments_and_layout():
    """Does a renamed, recommented, reformatted copy give the same tokens, and other code not?"""
    code = 'import torch\n\n\ndef scale(values, factor=2):\n    """Doc."""\n    return torch.relu(values) * factor  # x\n'
    copy = "import torch\ndef grow(xs, k=2):\n    # mine\n    return torch.relu(xs) * k\n"
    other = "import torch\ndef scale(values, factor=2):\n    return torch.tanh(values) + factor\n"
    assert similarity.code_tokens(code) == similarity.code_tokens(copy)
    assert similarity.code_tokens(code) != similarity.code_tokens(other)
    assert "relu" in similarity.code_tokens(code)   # the library's names are kept


def test_predictions_alike_within_tolerance():
    """Are predictions equal to 1e-5 listed, and those 1e-2 apart not?"""
    rng = torch.Generator().manual_seed(0)
    base = torch.rand(50, 30, generator=rng).numpy()
    pairs = similarity.alike_predictions({"a": base, "b": base + 1e-5, "c": base + 1e-2})
    assert [pair[:2] for pair in pairs] == [("a", "b")] and pairs[0][3] == pytest.approx(1e-5, rel=1e-2)


def test_reads_a_zipped_folder(tmp_path):
    """Is the model file found in a zip of a whole folder, and a file over the limit not read?"""
    path = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("my_work/models/keypoint_model.pt", b"weights")
    assert similarity.read_submission_file(path, MODEL_ENTRY, 100) == b"weights"
    assert similarity.read_submission_file(path, MODEL_ENTRY, 3) is None
    assert similarity.read_submission_file(path, "exercise_code/layers.py", 100) is None


def test_a_submission_folder_cannot_point_the_report_outside_it(tmp_path):
    """A submission folder whose only subfolder is a symlink elsewhere: the report reads nothing there."""
    from grader.similarity import read_submission_file

    outside = tmp_path / "outside" / "models"
    outside.mkdir(parents=True)
    (outside / "keypoint_model.pt").write_bytes(b"someone else's file")
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "wrapper").symlink_to(tmp_path / "outside")
    assert read_submission_file(submission, "models/keypoint_model.pt", 1000) is None
    (submission / "wrapper").unlink()
    (submission / "models").mkdir()
    (submission / "models" / "keypoint_model.pt").symlink_to(outside / "keypoint_model.pt")
    assert read_submission_file(submission, "models/keypoint_model.pt", 1000) is None
