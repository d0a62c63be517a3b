"""
Gradescope's results.json: the schema (grader/platforms/gradescope_results.schema.json) is a valid
JSON Schema, check_results refuses what Gradescope would refuse or misread and says where, and every
result the pack writes passes it: a scored, a failed and a perfect submission, old files read back,
and (through the fixture in conftest.py) every result any grading test writes.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip
from grader.api import grade
from grader.jail import Limits
from grader.pipeline import STEPS, Context, Submission, make_result
from grader.platforms.gradescope_results import InvalidResults, check_results, load_schema
from grader.points import PointsRule
from grader.results import LEADERBOARD_MAX, Result, read_result, write_gradebook, write_json_atomic
from grader.trusted import pixels_to_unit, read_keypoints_csv
from grading_scenarios import build_submission, patch_forward, valid_workspace


def result(raw_score=150.0, failure=None, seconds=1.234, passed=None):
    """A Result as the pipeline makes it, without grading anything (raw_score None with a failure)."""
    context = Context(images=None, count=8, targets=np.zeros((8, 15, 2), np.float32), scratch=None,
                      limits=Limits(10, 512), isolation="jail", points=PointsRule(), key="k")
    work = Submission(source=Path("/in/alice.zip"), context=context, raw_score=None if failure else raw_score,
                      timings={"total_s": seconds})
    failed_at, message = failure or (None, None)
    if passed is None:
        passed = ["ok"] * ([step.name for step in STEPS].index(failed_at) if failure else len(STEPS))
    return make_result("alice", work, passed, message)


def problems(document):
    """The problems check_results lists for document ([] when it is valid)."""
    try:
        check_results(document)
    except InvalidResults as error:
        assert str(error).count("\n- ") == len(error.problems)   # the message lists every one
        return error.problems
    return []


# The schema itself

def test_schema_is_a_valid_json_schema():
    """Is the schema valid draft 2020-12, and does every field it names say what the spec says of it?"""
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    objects = [schema, *schema["$defs"].values()]
    fields = [(name, spec) for o in objects for name, spec in o.get("properties", {}).items()]
    assert len(fields) == 11 + 11 + 3   # top level, a test, a leaderboard entry
    assert all(spec.get("description") for _, spec in fields), [name for name, spec in fields if not spec.get("description")]
    assert all(d.get("description") for d in schema["$defs"].values())


def test_every_field_of_the_spec_is_accepted():
    """Does a document using every field the spec names, with its own example values, pass?
    (A schema stricter than Gradescope would refuse results Gradescope reads.)"""
    test = {"score": 2.0, "max_score": 2.0, "status": "passed", "name": "Your name here", "name_format": "text",
            "number": "1.1", "output": "Giant multiline string\nthat will be placed in a <pre> tag",
            "output_format": "ansi", "tags": ["tag1", "tag2", "tag3"], "visibility": "visible", "extra_data": {}}
    document = {"score": 44.0, "execution_time": 136, "output": "Text relevant to the entire submission",
                "output_format": "simple_format", "test_output_format": "md", "test_name_format": "html",
                "visibility": "after_due_date", "stdout_visibility": "after_published", "extra_data": {"a": None},
                "tests": [test, {"name": "Style check", "status": "failed"}],
                "leaderboard": [{"name": "Accuracy", "value": .926}, {"name": "Time", "value": 15.1, "order": "asc"},
                                {"name": "Stars", "value": "*****"}]}
    assert problems(document) == []
    assert problems({"tests": [{"name": "Compilation check", "status": "passed"}]}) == []   # no top-level score
    assert problems({"score": 0}) == []


# Documents Gradescope would refuse or misread

def set_at(document, path, value):
    """document with the field at path ("tests", 0, "status") set to value (a copy)."""
    document = json.loads(json.dumps(document))
    *parents, last = path
    target = document
    for part in parents:
        target = target[part]
    target[last] = value
    return document


BAD = {   # what is wrong: (path, value, words the problem must hold)
    "null score": (("score",), None, "$.score: is null"),
    "float execution_time": (("execution_time",), 4.2, "$.execution_time: must be a whole number"),
    "execution_time written as 4.0": (("execution_time",), 4.0, "$.execution_time: must be a whole number"),
    "negative execution_time": (("execution_time",), -1, "$.execution_time: must be at least 0"),
    "bad status": (("tests", 0, "status"), "ok", '$.tests[0].status: must be one of "passed", "failed", not "ok"'),
    "NaN score": (("score",), float("nan"), "$.score: NaN is not a finite number"),
    "Infinity in extra_data": (("extra_data", "raw_score"), float("inf"), "$.extra_data.raw_score: Infinity is not"),
    "null in a test": (("tests", 3, "output"), None, "$.tests[3].output: is null"),
    "null test name": (("tests", 1, "name"), None, "$.tests[1].name: is null"),
    "leaderboard order up": (("leaderboard", 0, "order"), "up", '$.leaderboard[0].order: must be one of "asc", "desc"'),
    "the largest float on the leaderboard": (("leaderboard", 0, "value"), sys.float_info.max,
                                             "$.leaderboard[0].value: 1.7976931348623157e+308 is too large"),
    "a list as leaderboard value": (("leaderboard", 0, "value"), [1], "$.leaderboard[0].value: must be a number or"),
    "a boolean score": (("score",), True, "$.score: must be a number, not true"),
    "a number as test number": (("tests", 0, "number"), 1.1, "$.tests[0].number: must be a string"),
    "bad visibility": (("visibility",), "public", "$.visibility: must be one of"),
    "bad output format": (("tests", 2, "output_format"), "markdown", "$.tests[2].output_format: must be one of"),
    "misspelt field": (("visiblity",), "hidden", "$.visiblity: unknown field"),
    "misspelt test field": (("tests", 0, "max_points"), 1.0, "$.tests[0].max_points: unknown field"),
    "extra_data not an object": (("extra_data",), "notes", "$.extra_data: must be an object"),
}


@pytest.mark.parametrize("what", BAD)
def test_bad_document_is_refused_naming_the_field(what):
    """Is a result with one thing wrong refused, with exactly one problem that names the field and says what is wrong?"""
    path, value, words = BAD[what]
    found = problems(set_at(result().to_json(), path, value))
    assert len(found) == 1 and words in found[0], found


def test_every_problem_is_listed():
    """With several things wrong at once, does the error list each of them, by path, in document order?"""
    document = set_at(set_at(set_at(result().to_json(), ("score",), None), ("tests", 6, "status"), "ok"),
                      ("leaderboard", 0, "order"), "up")
    del document["leaderboard"][0]["name"]
    with pytest.raises(InvalidResults, match=r"Not a valid Gradescope results.json \(4 problems\)") as caught:
        check_results(document)
    assert [p.split(":")[0] for p in caught.value.problems] == \
        ["$.leaderboard[0]", "$.leaderboard[0].order", "$.score", "$.tests[6].status"]
    assert 'has no "name"' in caught.value.problems[0]
    assert isinstance(caught.value, ValueError)


def test_what_json_cannot_hold_is_refused():
    """Are a document with no score and no tests, a non-object and a value json.dumps cannot write refused?"""
    assert problems({"output": "hi"}) == ['$: needs a "score" or a "tests" list (the spec: the score is '
                                          '"required if not on each test case")']
    assert problems([]) == ["$: must be an object, not []"]
    found = problems({"score": 1.0, "extra_data": {"x": np.float32(1.5)}})
    assert found == ["$: cannot be written as strict JSON (Object of type float32 is not JSON serializable)"]


def test_null_is_allowed_in_extra_data():
    """Is null fine inside extra_data (where the pack keeps raw_score None), at the top and in a test?"""
    document = set_at(result().to_json(), ("tests", 0, "extra_data"), {"note": None})
    assert document["extra_data"]["grader_error"] is None and problems(document) == []


# What the pack writes

def test_results_of_every_kind_pass():
    """Do a scored, a failed, a grader-failed and a perfect result pass, as written and as read back?"""
    kinds = [result(150.0), result(failure=("code", "It broke.")), result(float("inf")),
             result(failure=("unpack", "The zip is empty."), seconds=0.0)]
    for r in kinds:
        document = r.to_json()
        check_results(document)
        check_results(json.loads(json.dumps(document, allow_nan=False)))
        assert Result.from_json(document).to_json() == document   # nothing lost in the round trip


def test_execution_time_is_whole_seconds_rounded_up(tmp_path):
    """Is execution_time an int, rounded up, with the precise seconds in extra_data, in the CSV and read back?"""
    for seconds, whole in [(1.234, 2), (4.0, 4), (0.0004, 0), (0.0006, 1), (59.999, 60)]:
        document = result(seconds=seconds).to_json()
        assert type(document["execution_time"]) is int and document["execution_time"] == whole, seconds
        assert document["extra_data"]["execution_time_s"] == round(seconds, 3)
        assert whole == math.ceil(document["extra_data"]["execution_time_s"])   # the two never disagree
    write_json_atomic(tmp_path / "alice.json", result(seconds=1.234))
    assert read_result(tmp_path / "alice.json").execution_time == 1.234
    write_gradebook(tmp_path)
    assert "1.234" in (tmp_path / "grades.csv").read_text().splitlines()[1].split(",")


def test_perfect_model_has_a_sane_leaderboard_value():
    """Is a perfect prediction's infinite score shown on the leaderboard as LEADERBOARD_MAX, a readable number,
    while extra_data keeps the largest float (it ranks first in the gradebook)?"""
    document = result(float("inf")).to_json()
    assert document["leaderboard"] == [{"name": "1/(2*MSE)", "value": LEADERBOARD_MAX, "order": "desc"}]
    assert LEADERBOARD_MAX == 1e6 and document["extra_data"]["raw_score"] == sys.float_info.max
    assert result(2e7).to_json()["leaderboard"][0]["value"] == LEADERBOARD_MAX     # ties at the top
    assert result(431.5).to_json()["leaderboard"][0]["value"] == 431.5              # real scores as they are
    assert result(failure=("code", "x")).to_json()["leaderboard"][0]["value"] == 0.0


def test_a_check_without_text_is_written_as_empty_text():
    """When a row has no text (steps passed but no failure message: an Outcome from a broken worker), is its
    output written as "" rather than null?"""
    r = result(passed=["ok"])   # one step passed, no failure said why the next did not
    assert r.tests[1].output is None
    document = r.to_json()
    assert document["tests"][1]["output"] == "" and problems(document) == []


def test_old_result_files_still_read(tmp_path):
    """Is a result file written before execution_time became an int (a float, the largest float on the
    leaderboard, no execution_time_s) still read, with its precise seconds, and written in the new shape?"""
    old = result(float("inf"), seconds=4.213).to_json()
    old["execution_time"], old["leaderboard"][0]["value"] = 4.213, sys.float_info.max
    del old["extra_data"]["execution_time_s"]
    (tmp_path / "alice.json").write_text(json.dumps(old))   # by hand: the checked writer would refuse it
    assert problems(old) and not problems(result(float("inf"), seconds=4.213).to_json())
    read = read_result(tmp_path / "alice.json")
    assert read.execution_time == 4.213 and read.raw_score == sys.float_info.max
    document = read.to_json()
    assert document["execution_time"] == 5 and document["extra_data"]["execution_time_s"] == 4.213
    check_results(document)
    write_gradebook(tmp_path)
    assert "4.213" in (tmp_path / "grades.csv").read_text()


def test_results_written_in_the_tests_are_checked(tmp_path, invalid_result_writes):
    """Does the conftest fixture make write_json_atomic refuse an invalid result, before writing it, and record it?
    (Were it broken, the tests of the grader would not prove every result they write is valid.)"""
    import grader.api
    import grader.results

    assert grader.api.write_json_atomic is grader.results.write_json_atomic   # grade() writes with the checked one
    bad = set_at(result().to_json(), ("tests", 0, "status"), "ok")
    for write in (write_json_atomic, grader.results.write_json_atomic):
        with pytest.raises(InvalidResults, match=r"\$.tests\[0\].status"):
            write(tmp_path / "alice.json", bad)
    assert not (tmp_path / "alice.json").exists() and len(invalid_result_writes) == 2
    invalid_result_writes.clear()   # refused on purpose: this test must not fail for it
    write_json_atomic(tmp_path / "notes.json", {"not": "a result", "x": None})   # other JSON is left alone
    write_json_atomic(tmp_path / "alice.json", result())
    assert read_result(tmp_path / "alice.json") is not None


# Grading real submissions

def perfect_submission(root, model, labels):
    """A submission whose forward returns the hidden labels (N, 30), batch after batch: a perfect model."""
    work = valid_workspace(root / "workspaces" / "perfect", model)
    patch_forward(work, f"import torch\nlabels = torch.tensor({labels.reshape(len(labels), -1).tolist()!r})\n"
                        "start = getattr(self, '_seen', 0)\nself._seen = start + len(x)\n"
                        "return labels[start:start + len(x)]")
    return create_submission_zip(model_path=work / MODEL_ENTRY, pack_root=work, out_dir=work) \
        .rename(root / "submissions" / "perfect.zip")


@pytest.mark.slow
def test_graded_submissions_are_valid_results(valid_model, hidden_subset, isolation, tmp_path):
    """Are the results of grading a valid model, a failing submission and a perfect model (predictions equal to
    the labels) valid results.json, as returned and as written, with an integer execution_time and a sane
    leaderboard value for the perfect one?"""
    build_submission("valid", tmp_path, valid_model)
    build_submission("wrong_shape", tmp_path, valid_model)
    data = read_keypoints_csv(hidden_subset)
    perfect_submission(tmp_path, valid_model, pixels_to_unit(torch.from_numpy(data.keypoints)).numpy())   # as grade()
    results = grade(submissions=[tmp_path / "submissions"], test_data=hidden_subset, out_dir=tmp_path / "out",
                    timeout_s=60, memory_mb=1536, scratch_dir=tmp_path / "scratch")
    by_name = {r["extra_data"]["submission"]: r for r in results}
    assert sorted(by_name) == ["perfect", "valid", "wrong_shape"]
    for name, document in by_name.items():
        check_results(document)
        check_results(json.loads((tmp_path / "out" / f"{name}.json").read_text()))
        assert type(document["execution_time"]) is int and document["execution_time"] >= 1
        assert document["execution_time"] == math.ceil(document["extra_data"]["execution_time_s"])
    valid, failed, perfect = by_name["valid"], by_name["wrong_shape"], by_name["perfect"]
    assert valid["score"] == 100 and 100 <= valid["leaderboard"][0]["value"] == valid["extra_data"]["raw_score"]
    assert failed["score"] == 0 and failed["leaderboard"][0]["value"] == 0.0, failed["output"]
    assert perfect["score"] == 100 and perfect["extra_data"]["raw_score"] == sys.float_info.max, perfect["output"]
    assert perfect["leaderboard"][0]["value"] == LEADERBOARD_MAX
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert board.index("| 1 | perfect |") < board.index("| 2 | valid |")
