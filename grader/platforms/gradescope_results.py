"""
Is this a results.json that Gradescope will read? check_results answers, or lists every problem.

    from grader.platforms.gradescope_results import InvalidResults, check_results
    check_results(result.to_json())   # None, or raises InvalidResults:
    # Not a valid Gradescope results.json (2 problems):
    # - $.execution_time: must be a whole number (an int, not a float such as 4.2 or 4.0), not 4.2
    # - $.tests[0].output: is null; Gradescope fails on null outside extra_data (leave the field out instead)

The rules are in gradescope_results.schema.json, beside this file: Gradescope's
spec transcribed field by field, plus the pack's stricter rules (its "description"
lists them). Gradescope publishes no validator of its own, and a file it cannot
read shows the student only "The autograder failed to execute correctly".
"""
import functools
import json
import math
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("gradescope_results.schema.json")

# How the schema's types read in a message.
_TYPE_WORDS = {"number": "a number", "integer": "a whole number (an int, not a float such as 4.2 or 4.0)",
               "string": "a string", "object": "an object", "array": "a list"}
_NULL = "is null; Gradescope fails on null outside extra_data (leave the field out instead)"


class InvalidResults(ValueError):
    """
    A results.json that breaks Gradescope's spec or the pack's rules.

    - problems: List of str, one per problem, each "<JSON path>: <what is wrong>" ("$" is the document)
    """

    def __init__(self, problems):
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"Not a valid Gradescope results.json ({count}):\n"
                         + "\n".join(f"- {problem}" for problem in self.problems))


def load_schema():
    """The schema of results.json (a dict; JSON Schema draft 2020-12)."""
    return json.loads(SCHEMA_PATH.read_text())


def check_results(data):
    """
    Check a results.json document against Gradescope's spec and the pack's stricter rules.

    Inputs:
    - data: The document as Python data: a dict, as Result.to_json() returns it or json.load reads it

    Returns:
    - None, when the document is valid

    Raises InvalidResults (a ValueError) listing every problem, each with its JSON path,
    like "$.tests[2].status: must be one of "passed", "failed", not "ok"".
    """
    found = _non_finite(data, ())   # JSON Schema cannot tell NaN or Infinity from a number
    for error in _validator().iter_errors(data):
        if _is_non_finite(error.instance):
            continue   # already said, as "not a finite number", rather than "too large"
        found += _problems(error)
    if not found:
        try:   # what the schema cannot see: values json.dumps cannot write (a numpy float32, a set...)
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as error:
            found.append(((), f"cannot be written as strict JSON ({error})"))
    if found:
        found.sort(key=lambda problem: [(isinstance(part, str), part) for part in problem[0]])
        raise InvalidResults(f"{_path(path)}: {words}" for path, words in found)


@functools.cache
def _validator():
    # Imported here, not at the top: importing jsonschema takes a noticeable fraction of a second, and every
    # process that imports the platforms package would pay for it, checking or not.
    try:
        import jsonschema
    except ImportError:
        raise ImportError("check_results needs the jsonschema package (pip install jsonschema; "
                          "the dev extra brings it with jupyter)") from None
    base = jsonschema.Draft202012Validator
    schema = load_schema()
    base.check_schema(schema)
    # JSON Schema counts 4.0 as an integer; json.dumps would write it as "4.0", which is not what the
    # spec's examples show. An integer here is a Python int (and True is not one).
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, instance: isinstance(instance, int) and not isinstance(instance, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _problems(error):
    """[(path, words)] for one jsonschema ValidationError, in plain words."""
    path, instance, kind = tuple(error.absolute_path), error.instance, error.validator
    if instance is None and kind in ("type", "enum", "anyOf"):
        return [(path, _NULL)]
    if kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return [(path, f"must be {' or '.join(_TYPE_WORDS.get(t, t) for t in expected)}, not {_show(instance)}")]
    if kind == "enum":
        return [(path, f"must be one of {', '.join(map(_show, error.validator_value))}, not {_show(instance)}")]
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        return [(path + (name,), "unknown field: Gradescope's results.json has no such field (a misspelling?)")
                for name in sorted(set(instance) - set(known))]
    if kind == "required":
        return [(path, f"has no {_show(name)}") for name in error.validator_value if name not in instance]
    if kind == "anyOf" and not path:   # the document's top level: a score, or tests to add up
        return [(path, 'needs a "score" or a "tests" list (the spec: the score is '
                       '"required if not on each test case")')]
    if kind == "anyOf" and isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return [(path, f"{_show(instance)} is too large for a leaderboard value (at most 1e15 in size: "
                       "write even a perfect model's score as a finite number people can read)")]
    if kind == "anyOf":
        return [(path, f"must be a number or a string, not {_show(instance)}")]
    if kind in ("minimum", "maximum"):
        return [(path, f"must be {'at least' if kind == 'minimum' else 'at most'} {error.validator_value}, "
                       f"not {_show(instance)}")]
    return [(path, error.message)]


def _non_finite(value, path):
    """[(path, words)] for every NaN or infinite float in value, extra_data included."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, f"{_show(value)} is not a finite number (strict JSON has no NaN or Infinity, "
                       "and Gradescope cannot read them)")]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _non_finite(item, path + (key,))]
    if isinstance(value, (list, tuple)):
        return [found for index, item in enumerate(value) for found in _non_finite(item, path + (index,))]
    return []


def _is_non_finite(value):
    return isinstance(value, float) and not math.isfinite(value)


def _path(parts):
    """("tests", 2, "status") -> "$.tests[2].status"."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def _show(value):
    """A value as it would look in the JSON file (NaN and Infinity as Python's json spells them), shortened."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
