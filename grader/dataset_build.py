"""
Build the course data from public sources, reproducibly: python -m grader dataset.

    from grader.dataset_build import build_dataset
    report = build_dataset(source="train-test-data.zip", kind="udacity", out_dir="datasets/built", seed=0)
    print("\n".join(report.lines()))

The pipeline, one small step each:

    read (dataset_sources) -> convert (crop, scale, grayscale) -> drop bad faces
        -> split by person (seeded) -> write the CSVs and zips -> read them back with the pack's reader

- udacity: the Udacity "Facial Keypoint Detection" (P1) data, YouTube Faces frames with 68 iBUG
  landmarks (training/ and test/ folders, training_frames_keypoints.csv, test_frames_keypoints.csv).
  The 15 keypoints come from grader/ibug_keypoints.py, the crop from grader/face_crop.py.
- kaggle: Kaggle's "Facial Keypoints Detection" training.csv (or its zip): the rows with all 15
  keypoints. Kaggle names nobody, so its split is by face, not by person.
- i2dl: I2DL's exercise 9 zip (training.csv, val.csv): its training/val split is kept as it is,
  and the hidden test split is taken from its training faces (seeded), unless it has a test.csv.

The output folder gets facial_keypoints.zip (training.csv, val.csv) and facial_keypoints_test.zip
(test.csv), exactly as `python -m exercise_code.util.download` takes them, SHA256SUMS and
build.json (what was built from what, with every count). The same source, seed and versions of
numpy and Pillow give the same CSVs byte for byte; the zips' bytes also depend on zlib.
"""
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from exercise_code.util.download import BUILT_ZIP_COMMENT
from .dataset_sources import (DatasetSourceError, SourceTree, open_source, person_of, read_kaggle_csv,
                              read_udacity)
from .face_crop import OUTPUT_SIZE, REFERENCE_POINTS, crop_face, fit_crop, move_keypoints
from .ibug_keypoints import ibug_to_kaggle
from .release import REPO_ROOT
from .trusted import KEYPOINT_COLUMNS, KEYPOINT_NAMES, DataFormatError, file_sha256, read_keypoints_csv

KINDS = ("udacity", "kaggle", "i2dl")
DEFAULT_OUT = REPO_ROOT / "datasets" / "built"   # git-ignored, as all data; `make clean` leaves it
SPLITS = ("training", "val", "test")   # the CSV names, without .csv
ZIPS = {"facial_keypoints.zip": ("training", "val"), "facial_keypoints_test.zip": ("test",)}
OUTPUTS = (*ZIPS, "SHA256SUMS", "build.json")

# Why a face is left out, in the order we check; each face counts once, for the first that applies.
DROP_REASONS = {
    "incomplete": "rows without all 15 keypoints",
    "duplicate": "duplicates (a frame listed again, or the same image again)",
    "too_small": "faces too small (the crop would enlarge them more than {max_upscale:g}x)",
    "outside": "faces with keypoints outside the image",
}


class DatasetBuildError(ValueError):
    """The data cannot be built; the message says what is wrong and what to do."""


@dataclass
class Faces:
    """
    Converted faces, ready to split.

    - images: uint8 array of shape (N, 96, 96)
    - keypoints: float64 array of shape (N, 15, 2), (x, y) in output pixels, pixel-index convention
    - groups: list of N names; a split never separates a group (a person; for Kaggle, the face itself)
    - splits: None, or an int array of shape (N,) when the source fixes the split (0 training, 1 val, 2 test; -1 open)
    """
    images: np.ndarray
    keypoints: np.ndarray
    groups: list
    splits: np.ndarray = None


@dataclass
class BuildReport:
    """What build_dataset read, dropped, converted and wrote."""
    kind: str
    source: str
    out_dir: Path
    seed: int
    read: int = 0
    people: int = None
    dropped: Counter = field(default_factory=Counter)
    padded: int = 0
    convert_seconds: float = 0.0
    converted: int = 0
    faces: dict = field(default_factory=dict)          # split -> faces
    split_people: dict = field(default_factory=dict)   # split -> people (udacity)
    means: dict = field(default_factory=dict)          # keypoint name -> [x, y], over all faces
    csv_sha256: dict = field(default_factory=dict)
    zip_sha256: dict = field(default_factory=dict)
    max_upscale: float = 2.0
    notes: list = field(default_factory=list)

    def lines(self):
        """The report as text lines, for the command line."""
        people = f" of {self.people} people" if self.people is not None else ""
        out = [f"Read {self.read} faces{people} from {self.source} ({self.kind})"]
        if self.dropped:
            out.append(f"Dropped {sum(self.dropped.values())}:")
            out += [f"  {count:5d}  {DROP_REASONS[reason].format(max_upscale=self.max_upscale)}"
                    for reason, count in self.dropped.items()]
        else:
            out.append("Dropped none")
        if self.kind == "udacity":
            rate = self.converted / self.convert_seconds if self.convert_seconds else 0
            out.append(f"Converted {self.converted} frames in {self.convert_seconds:.1f} s ({rate:.0f} frames/s); "
                       f"{self.padded} crops reached past the frame's border (filled with its edge pixels)")
        means = ", ".join(f"{name} ({x:.1f}, {y:.1f}) [Kaggle about {REFERENCE_POINTS[name]}]"
                          for name, (x, y) in self.means.items() if name in REFERENCE_POINTS)
        out.append(f"Keypoint means: {means}")
        counts = ", ".join(f"{split} {self.faces[split]}"
                           + (f" ({self.split_people[split]} people)" if self.split_people else "")
                           for split in SPLITS)
        out.append(f"Split (seed {self.seed}): {counts} faces")
        out += self.notes
        out += [f"Wrote {self.out_dir / name}  SHA-256 {digest}" for name, digest in self.zip_sha256.items()]
        names = list(self.zip_sha256)
        out.append(f"Use them: make demo FACIAL_KEYPOINTS_SOURCE={self.out_dir / names[0]} "
                   f"FACIAL_KEYPOINTS_TEST_SOURCE={self.out_dir / names[1]}")
        return out


def build_dataset(*, source, kind="udacity", out_dir=DEFAULT_OUT, seed=0, val_fraction=0.15, test_fraction=0.12,
                  max_upscale=2.0, force=False, progress=False):
    """
    Build the course data zips from a public source.

    Inputs:
    - source: A zip, a folder, a CSV file or a URL (see the module docstring for what each kind reads)
    - kind: "udacity", "kaggle" or "i2dl"
    - out_dir: Folder for the zips, SHA256SUMS and build.json (created)
    - seed: Seed of the split; the same seed gives the same split
    - val_fraction, test_fraction: Shares of all faces for val and test (rounded up to whole people)
    - max_upscale: Udacity: drop faces the crop would enlarge more than this
    - force: Replace the outputs out_dir already holds
    - progress: Show a progress bar of the conversion on stderr

    Returns:
    - BuildReport

    Raises DatasetBuildError (or its DatasetSourceError kin, naming the file and line) before writing anything.
    """
    if kind not in KINDS:
        raise DatasetBuildError(f"Unknown source kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetBuildError(f"Need 0 <= val_fraction, 0 < test_fraction and a sum below 1 "
                                f"(got {val_fraction}, {test_fraction})")
    if max_upscale <= 0:
        raise DatasetBuildError(f"max_upscale must be positive (got {max_upscale})")
    out_dir = Path(out_dir)
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not force:
        raise DatasetBuildError(f"{out_dir} already holds {', '.join(existing)}: pass --force to replace them, "
                                "or choose another --out")
    report = BuildReport(kind=kind, source=str(source), out_dir=out_dir, seed=seed, max_upscale=max_upscale)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".building-") as work:
        work = Path(work)
        tree = open_source(source, work)
        faces = READERS[kind](tree, work, report, max_upscale=max_upscale, progress=progress)
        split = assign_splits(faces, val_fraction, test_fraction, seed)
        empty = [name for i, name in enumerate(SPLITS) if not np.any(split == i)]
        if empty:
            raise DatasetBuildError(f"The {' and '.join(empty)} split would be empty ({len(split)} faces in all): "
                                    "use more data, or raise --val-fraction / --test-fraction")
        _summarize(report, faces, split)
        _write_outputs(report, faces, split, work)
        for name in OUTPUTS:
            os.replace(work / name, out_dir / name)   # all written and checked: now they take their place
    return report


def read_udacity_faces(tree, work, report, *, max_upscale, progress=False):
    """
    Convert the Udacity frames: 15 keypoints from the 68, the crop, grayscale, the drops.

    Returns:
    - Faces, one group per person
    """
    frames = read_udacity(tree)
    keypoints = ibug_to_kaggle(frames.landmarks)                               # (N, 15, 2) frame pixels
    scale, shift = fit_crop(keypoints)                                         # (N,), (N, 2)
    moved = np.round(move_keypoints(keypoints, scale, shift), 4) + 0.0         # (N, 15, 2); + 0.0: no "-0.0000"
    report.read, report.people = len(frames.names), len({person_of(n) for n in frames.names})

    reasons = np.full(len(frames.names), "", dtype=object)
    # A frame listed twice. By its path, not its name: Udacity's test/ reuses the names of training/
    # for other frames (768 of its 770). Frames with the same pixels are found after decoding.
    seen_paths = set()
    for i, path in enumerate(frames.images):
        if path in seen_paths:
            reasons[i] = "duplicate"
        seen_paths.add(path)
    reasons[(reasons == "") & (scale > max_upscale)] = "too_small"
    reasons[(reasons == "") & _outside(moved)] = "outside"

    images, kept, seen_images = [], [], set()
    todo = np.flatnonzero(reasons == "")
    start = time.perf_counter()
    for i in tqdm(todo, desc="frames", unit="frame", disable=not progress):
        frame = _open_frame(tree, frames.images[i], frames.rows[i])
        width, height = frame.size
        if _outside(keypoints[i][None], width, height)[0]:
            reasons[i] = "outside"   # a keypoint beyond the frame's border was guessed, and would sit on padding
            continue
        image, padded = crop_face(frame.convert("L"), scale[i], shift[i])
        digest = hashlib.sha256(image.tobytes()).digest()
        if digest in seen_images:
            reasons[i] = "duplicate"
            continue
        seen_images.add(digest)
        report.padded += padded
        images.append(image)
        kept.append(i)
    report.convert_seconds, report.converted = time.perf_counter() - start, len(todo)
    report.dropped = Counter({reason: int(np.sum(reasons == reason)) for reason in DROP_REASONS
                              if np.sum(reasons == reason)})
    if not kept:
        raise DatasetBuildError(f"{tree.label}: every face was dropped ({dict(report.dropped)})")
    return Faces(images=np.stack(images), keypoints=moved[kept], groups=[person_of(frames.names[i]) for i in kept])


def _open_frame(tree, name, row):
    """A frame as a PIL image, or a DatasetSourceError naming the CSV row."""
    try:
        frame = Image.open(io.BytesIO(tree.read(name)))
        frame.load()
        return frame
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetSourceError(f"{row}: the image {name} cannot be read ({error}): a broken download? "
                                 "Get the data again") from None


def _outside(keypoints, width=OUTPUT_SIZE, height=OUTPUT_SIZE):
    """(N,) bool: some keypoint of the (N, K, 2) array lies outside a width x height image (pixel-index)."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    return ((x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)).any(axis=-1)


def read_kaggle_faces(tree, work, report, **unused):
    """Kaggle's training.csv (alone, in a folder or zip, or in the competition's zip as training.zip)."""
    if tree.find("training.csv") is None and tree.find("training.zip") is not None:
        nested = work / "training.zip"
        nested.write_bytes(tree.read(tree.find("training.zip")))
        tree = SourceTree(nested, label=f"{tree.label}:{tree.find('training.zip')}")
    table = read_kaggle_csv(tree, "training.csv")
    report.read = len(table.rows)
    faces = _clean_tables([table], report)
    faces.splits[:] = -1   # all open: the split is ours
    report.notes.append("Kaggle names nobody, so the split is by face: a person may be in two splits")
    return faces


def read_i2dl_faces(tree, work, report, **unused):
    """I2DL's zip: training.csv and val.csv kept as they split, test.csv if it has one."""
    names = [split for split in SPLITS if tree.find(f"{split}.csv") is not None]
    if "training" not in names or "val" not in names:
        raise DatasetSourceError(f"{tree.label} holds no {' nor '.join(f'{s}.csv' for s in ('training', 'val') if s not in names)}: "
                                 "is it I2DL's exercise 9 zip?")
    tables = [read_kaggle_csv(tree, f"{split}.csv") for split in names]
    report.read = sum(len(t.rows) for t in tables)
    faces = _clean_tables(tables, report)
    if "test" in names:
        report.notes.append("I2DL's training, val and test splits are kept as they are")
    else:
        faces.splits[faces.splits == 0] = -1   # the training faces are open: the test split comes from them
        report.notes.append("I2DL's val split is kept as it is; its training faces were split (seeded) into "
                            "training and test, by face: I2DL's own test split is not public")
    return faces


def _clean_tables(tables, report):
    """Drop incomplete rows, keypoints outside the image and repeated images from Kaggle-format tables."""
    keypoints = np.concatenate([t.keypoints for t in tables])                  # (N, 15, 2), NaN if missing
    images = np.concatenate([t.images for t in tables])                        # (N, 96, 96)
    splits = np.concatenate([np.full(len(t.rows), i) for i, t in enumerate(tables)])
    reasons = np.full(len(keypoints), "", dtype=object)
    reasons[np.isnan(keypoints).any(axis=(1, 2))] = "incomplete"
    seen = set()
    for i in np.flatnonzero(reasons == ""):
        digest = hashlib.sha256(images[i].tobytes()).digest()
        if digest in seen:
            reasons[i] = "duplicate"
        seen.add(digest)
    reasons[(reasons == "") & _outside(np.nan_to_num(keypoints))] = "outside"
    report.dropped = Counter({r: int(np.sum(reasons == r)) for r in DROP_REASONS if np.sum(reasons == r)})
    keep = reasons == ""
    if not keep.any():
        raise DatasetBuildError(f"every row was dropped ({dict(report.dropped)})")
    return Faces(images=images[keep], keypoints=keypoints[keep].astype(np.float64) + 0.0,
                 groups=[f"row {i}" for i in np.flatnonzero(keep)], splits=splits[keep])


READERS = {"udacity": read_udacity_faces, "kaggle": read_kaggle_faces, "i2dl": read_i2dl_faces}


def assign_splits(faces, val_fraction, test_fraction, seed):
    """
    Split the faces, seeded, so that no group (person) is in two splits.

    We shuffle the groups with the seed, then give whole groups to test until it holds test_fraction
    of all faces, then to val, and the rest to training. Faces whose split the source fixed keep it.

    Inputs:
    - faces: Faces
    - val_fraction, test_fraction: Shares of all faces

    Returns:
    - int array of shape (N,): 0 training, 1 val, 2 test
    """
    total = len(faces.groups)
    split = np.full(total, -1) if faces.splits is None else faces.splits.copy()
    open_rows = np.flatnonzero(split == -1)
    if len(open_rows) == 0:
        return split
    names, inverse, counts = np.unique(np.asarray(faces.groups, dtype=object)[open_rows].astype(str),
                                       return_inverse=True, return_counts=True)   # sorted: independent of row order
    order = np.random.default_rng(seed).permutation(len(names))
    group_split = np.zeros(len(names), dtype=int)
    position = 0
    for target, fraction in ((2, test_fraction), (1, val_fraction)):
        if np.any(split == target):
            continue   # the source fixed this split
        taken = 0
        while taken < fraction * total and position < len(order):
            group_split[order[position]] = target
            taken += counts[order[position]]
            position += 1
    if position >= len(order):
        raise DatasetBuildError(f"Only {len(names)} people (groups) for three splits: too few to give training any; "
                                "lower --val-fraction and --test-fraction, or use more data")
    split[open_rows] = group_split[inverse]
    return split


def _summarize(report, faces, split):
    report.faces = {name: int(np.sum(split == i)) for i, name in enumerate(SPLITS)}
    if report.kind == "udacity":
        groups = np.asarray(faces.groups, dtype=object)
        report.split_people = {name: len(set(groups[split == i])) for i, name in enumerate(SPLITS)}
    means = faces.keypoints.mean(axis=0)                                       # (15, 2)
    report.means = {name: [round(float(x), 2), round(float(y), 2)] for name, (x, y) in zip(KEYPOINT_NAMES, means)}


_PIXEL_TEXT = np.array([str(v) for v in range(256)], dtype=object)


def write_keypoints_csv(path, images, keypoints):
    """
    Write faces in the pack's CSV format: the 30 keypoint columns (4 decimals), then Image.

    Inputs:
    - images: uint8 array of shape (N, 96, 96)
    - keypoints: array of shape (N, 15, 2), in pixels
    """
    with open(path, "w", newline="\n", encoding="ascii") as f:
        f.write(",".join(KEYPOINT_COLUMNS + ["Image"]) + "\n")
        for image, points in zip(images, keypoints):
            f.write(",".join(f"{v:.4f}" for v in points.ravel()) + "," + " ".join(_PIXEL_TEXT[image.ravel()]) + "\n")


def write_zip(path, files, comment):
    """
    A zip whose bytes depend only on its files' contents (and zlib): fixed dates, modes and order.

    Inputs:
    - path: The zip to write
    - files: Dict {name in the zip: path of the file}
    - comment: bytes, the zip's comment
    """
    with zipfile.ZipFile(path, "w") as archive:
        for name, source in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
            with open(source, "rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        archive.comment = comment


def _write_outputs(report, faces, split, work):
    """The CSVs, read back with the pack's reader, then the zips, SHA256SUMS and build.json, all in work."""
    for i, name in enumerate(SPLITS):
        path = work / f"{name}.csv"
        write_keypoints_csv(path, faces.images[split == i], faces.keypoints[split == i])
        try:
            back = read_keypoints_csv(path)   # what the students' dataset and the grader will read
        except DataFormatError as error:
            raise DatasetBuildError(f"The pack's reader refuses the CSV we wrote (a bug of the builder): {error}")
        assert len(back.keypoints) == report.faces[name] and back.num_dropped == 0
        report.csv_sha256[path.name] = file_sha256(path)
    comment = BUILT_ZIP_COMMENT + f": from {report.kind}, seed {report.seed}".encode()
    for zip_name, members in ZIPS.items():
        write_zip(work / zip_name, {f"{m}.csv": work / f"{m}.csv" for m in members}, comment)
        report.zip_sha256[zip_name] = file_sha256(work / zip_name)
    (work / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in report.zip_sha256.items()))
    record = {
        "built_by": "python -m grader dataset", "from": report.kind, "source": report.source,
        "seed": report.seed, "max_upscale": report.max_upscale, "read": report.read, "people": report.people,
        "dropped": dict(report.dropped), "padded": report.padded, "faces": report.faces,
        "people_per_split": report.split_people, "keypoint_means": report.means, "notes": report.notes,
        "zip_sha256": report.zip_sha256, "csv_sha256": report.csv_sha256,
        "versions": {"numpy": np.__version__, "pillow": PIL.__version__},
    }
    (work / "build.json").write_text(json.dumps(record, indent=1) + "\n")
