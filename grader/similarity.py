"""
Submissions that are alike, for the instructors' class report (grader/report.py).

Three signs, each a list for an instructor to look at, never a verdict:

    same_model_files(sources)       the same bytes in models/keypoint_model.pt
    alike_predictions(predictions)  the same predictions on the hidden faces, to within PREDICTION_RMS
    alike_code(sources)             nearly the same code in the files students edit, beyond the code
                                    everyone shares (the starter, the reference solution, common idioms)

The code is compared as JPlag and MOSS do: each file becomes a sequence of tokens
with comments, docstrings and layout dropped and the student's own names replaced
by one placeholder (a renamed copy reads the same), cut into overlapping n-grams.
We drop the n-grams of the starter and of the reference solution, and those that
many students share, and compare what is left with the Jaccard similarity.

Nothing here runs or unpickles a submission: it reads bytes (capped) from zips and folders.
"""
import builtins
import functools
import hashlib
import io
import itertools
import keyword
import math
import tokenize
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .release import BEGIN, strip_solutions
from .trusted import MAX_FILE_BYTES, MODEL_ENTRY, PACKAGE
from .errors import CheckFailed
from .unpack import MAX_FILES, check_zip_size, find_submission_root

# The files students edit: those of the solved package with solution regions (read once, at import).
EDITED_FILES = sorted(f"exercise_code/{path.relative_to(PACKAGE).as_posix()}" for path in PACKAGE.rglob("*.py")
                      if BEGIN in path.read_text())
MAX_CODE_BYTES = 500_000     # a student's file is a few kB; we read no more of one
NGRAM = 12                   # tokens per n-gram: about one statement, so one shared idiom is not a match
MIN_NGRAMS = 20              # a student's own n-grams below this say nothing: not compared
CODE_JACCARD = 0.5           # listed at this similarity or above (a renamed copy is near 1, honest pairs < 0.2)
COMMON_SHARE = 0.2           # n-grams in more than this share of the class (and more than COMMON_MIN
COMMON_MIN = 5               # submissions) are common idioms, not copying: dropped
PREDICTION_RMS = 1e-4        # unit coordinates (1 px = 1/48): far below any two trained models' difference
KEPT_NAMES = set(dir(builtins)) | {"self", "cls"}   # names a renamer leaves alone, as the library's


@dataclass(frozen=True)
class CodePair:
    """Two submissions with alike code: their Jaccard similarity, the n-grams they share, and where."""
    first: str
    second: str
    jaccard: float
    shared: int
    files: tuple    # the edited files holding shared n-grams, most first


def same_model_files(sources):
    """
    Submissions whose model files have the same bytes.

    Inputs:
    - sources: Dict {name: path of a submission .zip or folder}

    Returns:
    - List of (sha256 hex, [names]) for each model file held by two or more, largest group first
    """
    names_by_hash = defaultdict(list)
    for name, source in sorted(sources.items()):
        data = read_submission_file(source, MODEL_ENTRY, 2 * MAX_FILE_BYTES)
        if data is not None:
            names_by_hash[hashlib.sha256(data).hexdigest()].append(name)
    return sorted(((digest, names) for digest, names in names_by_hash.items() if len(names) > 1),
                  key=lambda group: (-len(group[1]), group[1]))


def alike_predictions(predictions, tolerance=PREDICTION_RMS):
    """
    Pairs of submissions whose predictions on the hidden faces are the same to within tolerance.

    Inputs:
    - predictions: Dict {name: float array (N, 30)}, unit coordinates, all of the same shape
    - tolerance: The largest root mean squared difference listed

    Returns:
    - List of (name, name, rms difference, max abs difference), most alike first
    """
    names = sorted(predictions)
    if len(names) < 2:
        return []
    x = np.stack([np.asarray(predictions[name], dtype=np.float64).ravel() for name in names])   # (S, D)
    x -= x.mean(axis=0)   # centred, so the Gram matrix below loses no precision to the common offset
    squares = (x * x).sum(axis=1)                                       # (S,)
    distances = squares[:, None] + squares[None, :] - 2 * (x @ x.T)     # (S, S): squared distances
    # The Gram matrix only picks candidates (with room for its rounding); each is measured exactly.
    limit = (2 * tolerance) ** 2 * x.shape[1]
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(distances <= limit, k=1))):
        difference = x[i] - x[j]
        rms = float(np.sqrt(np.mean(difference ** 2)))
        if rms <= tolerance:
            pairs.append((names[i], names[j], rms, float(np.abs(difference).max())))
    return sorted(pairs, key=lambda pair: (pair[2], pair[0], pair[1]))


def alike_code(sources, threshold=CODE_JACCARD):
    """
    Pairs of submissions with nearly the same code in the files students edit, beyond shared code.

    Inputs:
    - sources: Dict {name: path of a submission .zip or folder}
    - threshold: The smallest Jaccard similarity listed

    Returns:
    - List of CodePair, most alike first
    """
    own = {name: own_ngrams(source) for name, source in sorted(sources.items())}
    holders = defaultdict(list)   # n-gram -> the submissions holding it
    for name, ngrams in own.items():
        for ngram in ngrams:
            holders[ngram].append(name)
    common = max(COMMON_MIN, math.ceil(COMMON_SHARE * len(own)))
    for ngram, names in holders.items():
        if len(names) > common:
            for name in names:
                own[name].discard(ngram)
    shared = defaultdict(Counter)   # (name, name) -> {file: shared n-grams}
    for (path, _), names in holders.items():
        if 2 <= len(names) <= common:
            for pair in itertools.combinations(names, 2):
                shared[pair][path] += 1
    pairs = []
    for (first, second), files in shared.items():
        count, sizes = sum(files.values()), (len(own[first]), len(own[second]))
        if min(sizes) < MIN_NGRAMS:
            continue
        jaccard = count / (sum(sizes) - count)
        if jaccard >= threshold:
            pairs.append(CodePair(first, second, round(jaccard, 3), count,
                                  tuple(path for path, _ in files.most_common())))
    return sorted(pairs, key=lambda pair: (-pair.jaccard, pair.first, pair.second))


def own_ngrams(source):
    """
    The n-grams of a submission's edited files that neither the starter nor the reference solution holds.

    Inputs:
    - source: Path of a submission .zip or folder

    Returns:
    - Set of (file, hash of NGRAM normalized tokens); empty when none of the files can be read
    """
    ngrams = set()
    for path in EDITED_FILES:
        data = read_submission_file(source, path, MAX_CODE_BYTES)
        if data is not None:
            text = data.decode("utf-8", errors="replace")
            ngrams |= {(path, ngram) for ngram in token_ngrams(code_tokens(text)) - _base_ngrams(path)}
    return ngrams


@functools.cache
def _base_ngrams(path):
    """The n-grams of a file's starter and of its reference solution: code every student has, or converges to."""
    solution = (PACKAGE / PurePosixPath(path).relative_to("exercise_code")).read_text()
    return frozenset(token_ngrams(code_tokens(solution)) | token_ngrams(code_tokens(strip_solutions(solution))))


def token_ngrams(tokens, n=NGRAM):
    """The set of hashes of every n consecutive tokens (a shorter sequence is one n-gram)."""
    return {hash(tuple(tokens[i:i + n])) for i in range(max(1, len(tokens) - n + 1))} if tokens else set()


def code_tokens(text):
    """
    Python source as a list of tokens that a renamed, recommented, reformatted copy shares.

    Inputs:
    - text: Python source (it need not compile)

    Returns:
    - List of str: keywords, operators, numbers and the library's names as they are; every other
      name as "I" and every string as "S"; comments, docstrings and blank lines dropped; line
      ends and indentation as "\\n", "{", "}". A file that stops tokenizing ends there.
    """
    out, after_library = [], False
    raw = _raw_tokens(text)
    library = _imported_names(raw)
    docstring_ends = False
    for index, token in enumerate(raw):
        kind, string = token.type, token.string
        if kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        if kind == tokenize.STRING and _is_docstring(raw, index):
            docstring_ends = True   # and its line end goes with it
            continue
        if docstring_ends and kind == tokenize.NEWLINE:
            docstring_ends = False
            continue
        if kind == tokenize.NAME:
            # a library's name, and the attributes read off it (nn.Conv2d), are what a renamer cannot change
            kept = keyword.iskeyword(string) or string in KEPT_NAMES or string in library or after_library
            out.append(string if kept else "I")
            after_library = string in library or after_library
            continue
        after_library = after_library and string == "."
        out.append({tokenize.STRING: "S", tokenize.NEWLINE: "\n", tokenize.INDENT: "{",
                    tokenize.DEDENT: "}"}.get(kind, string))
    return out


def _raw_tokens(text):
    """Python's tokens of text; where it stops tokenizing (an unclosed bracket or string), those before."""
    tokens = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            tokens.append(token)
    except (tokenize.TokenError, SyntaxError):
        pass
    return tokens


def _imported_names(tokens):
    """The names an import binds (torch, nn, F, np...): `import a.b as c` binds c, `from a import b` binds b."""
    names, statement = set(), []
    for token in tokens + [None]:
        if token is None or token.type in (tokenize.NEWLINE, tokenize.NL) or token.string == ";":
            words = [t.string for t in statement if t.type == tokenize.NAME or t.string == ","]
            if words[:1] in (["import"], ["from"]):
                imported = words[words.index("import") + 1:] if "import" in words else []
                for alias in " ".join(imported).split(","):
                    parts = alias.split()
                    if parts:
                        names.add(parts[-1] if "as" in parts else parts[0])
            statement = []
        elif token.type not in (tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            statement.append(token)
    return names


def _is_docstring(tokens, index):
    """Whether the string at index is a statement by itself (a docstring, or a string left as a comment).
    Walks outward from index (no copies of the token list: a file of many strings stays linear)."""
    skip = (tokenize.NL, tokenize.COMMENT)
    before = next((tokens[i] for i in range(index - 1, -1, -1) if tokens[i].type not in skip), None)
    after = next((tokens[i] for i in range(index + 1, len(tokens)) if tokens[i].type not in skip), None)
    starts = before is None or before.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return starts and (after is None or after.type in (tokenize.NEWLINE, tokenize.ENDMARKER))


def read_submission_file(source, path, limit):
    """
    The bytes of one file of a submission, without unpacking it.

    Inputs:
    - source: Path of a submission .zip, or of its folder (or a folder holding only it)
    - path: The file's path inside the submission ("models/keypoint_model.pt")
    - limit: Bytes; a larger file is not read

    Returns:
    - bytes, or None when the file is not there, not a plain file, too large, or the zip is unreadable
    """
    source = Path(source)
    try:
        if source.is_dir():
            top = source.resolve()
            root = find_submission_root(source).resolve()
            target = (root / path).resolve()   # no symlink out of the submission, at any depth
            if not (root.is_relative_to(top) and target.is_relative_to(top) and target.is_file()
                    and target.stat().st_size <= limit):
                return None
            return target.read_bytes()
        check_zip_size(source)   # the limits grading puts on a zip, before its index is read
        with zipfile.ZipFile(source) as archive:
            if len(archive.infolist()) > MAX_FILES:
                return None
            info = _zip_entry(archive, path)
            if info is None or info.file_size > limit or info.flag_bits & 0x1:
                return None
            with archive.open(info) as f:
                data = f.read(limit + 1)   # the header's size may lie
            return data if len(data) <= limit else None
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError, EOFError, CheckFailed):
        return None


def _zip_entry(archive, path):
    """The zip's entry for path, at the top or below one wrapper folder (the student zipped a folder)."""
    wanted = tuple(PurePosixPath(path).parts)
    found = []
    for info in archive.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts   # Windows tools may use backslashes
        if not info.is_dir() and parts[-len(wanted):] == wanted and len(parts) <= len(wanted) + 1:
            found.append((len(parts), info))
    return min(found, key=lambda item: item[0], default=(0, None))[1]
