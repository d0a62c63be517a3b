"""
A CSV file whose cells can be replaced in place, every other byte kept.

A gradebook export goes back to the platform it came from, which matches its
headers and rows by their exact text. Reading it with the csv module and writing
it again would change what we never meant to touch (quoting, line endings, a
byte-order mark). So we keep the file's text and where each cell sits in it,
and write back only the cells we fill.

    table = CsvTable.read("export.csv", delimiters=",;")
    table.rows[0][1]                     # a cell's value, unquoted
    table.set(3, 7, "91.5")              # row 3, column 7
    table.write("filled.csv")            # the same bytes, but for that cell
"""
import codecs
from dataclasses import dataclass
from pathlib import Path

from ..trusted import atomic_file
from .grades_source import GradebookError


@dataclass(frozen=True)
class _Span:
    value: str       # the cell's text, without quotes
    start: int       # where its raw text starts in the file's text
    end: int         # where it ends
    quoted: bool     # written in double quotes


class CsvTable:
    """
    A parsed CSV file that remembers where each cell is.

    - path: The file read
    - delimiter: The one character between cells
    - rows: List of rows, each a list of cell values (str), as written
    """

    def __init__(self, path, text, delimiter, bom=b""):
        self.path, self.text, self.delimiter, self.bom = Path(path), text, delimiter, bom
        self._spans, self._ends = _parse(text, delimiter, self.path)
        self.rows = [[span.value for span in row] for row in self._spans]
        self._edits = {}

    @classmethod
    def read(cls, path, delimiters=",", choose=None):
        """
        Read path as UTF-8 text (a byte-order mark is kept) and split it by one of delimiters.

        Inputs:
        - delimiters: The candidate delimiters, in order of preference
        - choose: Optional function (dict of delimiter -> rows) -> delimiter, for formats with a
          rule of their own; by default the first delimiter whose header has more than one cell

        Raises GradebookError if the file cannot be read or is not a CSV.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise GradebookError(f"Cannot read {path}: {error.strerror or error}.") from None
        bom = codecs.BOM_UTF8 if raw.startswith(codecs.BOM_UTF8) else b""
        try:
            text = raw[len(bom):].decode("utf-8")
        except UnicodeDecodeError as error:
            raise GradebookError(f"{path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}). "
                                 "Use the file as the platform exported it; a spreadsheet program must save it as "
                                 "'CSV UTF-8'.") from None
        if not text.strip():
            raise GradebookError(f"{path} is empty. Export the gradebook again.")
        parsed = {}
        for delimiter in delimiters:
            try:
                parsed[delimiter] = _parse(text, delimiter, path)[0]
            except GradebookError as error:
                last_error = error
        if not parsed:
            raise last_error
        views = {d: [[span.value for span in row] for row in spans] for d, spans in parsed.items()}
        delimiter = choose(views) if choose else next((d for d, rows in views.items() if len(rows[0]) > 1), None)
        if delimiter is None:
            raise GradebookError(f"{path} is not a CSV file: its first line has no "
                                 f"{' or '.join(map(repr, delimiters))} between cells. Export the gradebook again.")
        return cls(path, text, delimiter, bom)

    def set(self, row, column, value):
        """Replace the cell at (row, column) with value (a column past the row's end is added)."""
        self._edits[row, column] = str(value)

    def edited(self):
        """The file's text with every cell set so far."""
        pieces, last = [], 0
        for row_index in sorted({r for r, _ in self._edits}):
            spans, columns = self._spans[row_index], sorted(c for r, c in self._edits if r == row_index)
            for column in (c for c in columns if c < len(spans)):
                span = spans[column]
                pieces += [self.text[last:span.start], self._encode(self._edits[row_index, column], span.quoted)]
                last = span.end
            added = [c for c in columns if c >= len(spans)]
            if added:   # a short row: pad it with empty cells up to the last one set
                end = self._ends[row_index]
                cells = [self._encode(self._edits.get((row_index, c), ""), False)
                         for c in range(len(spans), added[-1] + 1)]
                pieces += [self.text[last:end], "".join(self.delimiter + cell for cell in cells)]
                last = end
        return "".join(pieces) + self.text[last:]

    def write(self, path):
        """Write the edited file to path, atomically (a reader sees the old file or the new one)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, "wb") as f:
                f.write(self.bom + self.edited().encode("utf-8"))
        except OSError as error:
            raise GradebookError(f"Cannot write {path}: {error.strerror or error}. Choose another --out.") from None

    def _encode(self, value, quoted):
        # Quote as the cell was, or when the value needs it (RFC 4180).
        if quoted or any(ch in value for ch in (self.delimiter, '"', "\r", "\n")) or value != value.strip():
            return '"' + value.replace('"', '""') + '"'
        return value

    def __repr__(self):
        return f"CsvTable({str(self.path)!r}, {len(self.rows)} rows, delimiter={self.delimiter!r})"


def _parse(text, delimiter, path):
    """
    Split text into rows of _Span (RFC 4180: cells in double quotes may hold the delimiter,
    newlines and doubled quotes).

    Returns a tuple of:
    - rows: List of lists of _Span
    - ends: For each row, where its last cell ends (before the line break)
    """
    rows, ends, i, n = [], [], 0, len(text)
    while i < n:
        spans = []
        while True:
            start = i
            if i < n and text[i] == '"':
                parts, i = [], i + 1
                while True:
                    close = text.find('"', i)
                    if close < 0:
                        raise GradebookError(f"{path}, line {_line(text, start)}: a quoted cell never ends (a \" "
                                             "is missing). Export the gradebook again.")
                    parts.append(text[i:close])
                    if text.startswith('""', close):
                        parts.append('"')
                        i = close + 2
                        continue
                    i = close + 1
                    break
                if i < n and text[i] not in (delimiter, "\r", "\n"):
                    raise GradebookError(f"{path}, line {_line(text, start)}: text after a quoted cell. "
                                         "Export the gradebook again.")
                spans.append(_Span("".join(parts), start, i, True))
            else:
                while i < n and text[i] not in (delimiter, "\r", "\n"):
                    i += 1
                if '"' in text[start:i]:
                    raise GradebookError(f"{path}, line {_line(text, start)}: a \" inside an unquoted cell. "
                                         "Export the gradebook again.")
                spans.append(_Span(text[start:i], start, i, False))
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        rows.append(spans)
        ends.append(i)
        i += 2 if text.startswith("\r\n", i) else 1
    return rows, ends


def _line(text, position):
    return text.count("\n", 0, position) + 1
