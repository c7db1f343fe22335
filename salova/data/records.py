"""Typed data records: reading, validation and the router label rules.

Three training formats (reference salova.md §4), read as published:

- stage 1 (alignment): ``{id, image | video, conversations}``, one clip or image per record;
- stage 1.5 (SceneWalk, video level): ``{id, video, clip_num?, scenes, sen_sim (T x T),
  lb_sim (T x T), conversations}`` with 2 conversation entries per scene, in scene order;
- stage 2 (SFT): ``{id, video, scenes, lb_sim (questions x T), conversations}``.

and the question rows of three benchmarks in their official schemas (lmms_eval.md §2):
Video-MME (parquet), MLVU dev (sy1998 parquet) and LongVideoBench (json or parquet), plus
the synthetic needle-in-a-haystack set (Video-MME's schema and two columns). All question
rows are offered through one view, :class:`Question`.

Every validation failure raises :class:`RecordError` with a message naming the file, the
record (0-based index and id) and the field, for example
``train.json record 12 (id=yt_03): field 'sen_sim' has shape 3x2, expected 3x3 (one row
and column per scene)``. Relative media paths resolve under a configured folder and can
never leave it (``..``, absolute paths and symlinks pointing out are rejected).

Label rules (reference salova.md §3.2), thresholds configurable through
:class:`LabelThresholds`; rows = captions or questions, columns = scenes:

- stage 1.5: ``y = (sen_sim > t2t) | (lb_sim > v2t)``; a row with no positive falls back
  to its argmax T2T scene (its own caption's scene whenever ``sen_sim`` holds
  self-similarity), and the fallback is reported;
- stage 2: ``y = lb_sim > v2t`` with an argmax-V2T fallback;
- focus fed to the LLM: the positives, capped at K by V2T *among the positives*. The
  released code ranks all scenes by V2T when a caption has more than K positives (and, in
  stage 2, ignores the labels altogether), so its focus could hold negatives; we fix it.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from salova.errors import RecordError

SPEAKERS = ("human", "gpt")
MEDIA_PLACEHOLDERS = ("<image>\n", "<video>\n", "<image>", "<video>")
LETTERS = "ABCDEFGH"
# An option line inside a question text: "\n(A) ...", "\nA. ...", "\nB) ...".
_OPTION_LINE = re.compile(r"\n\s*\(?[A-H][).]\s")

# ---------------------------------------------------------------------------------------
# Where a value comes from, and the error that names it
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A record's place: file, 0-based index, and its id once known."""

    file: str
    index: int
    record_id: str | None = None

    def __str__(self) -> str:
        ident = f" (id={self.record_id})" if self.record_id is not None else ""
        return f"{self.file} record {self.index}{ident}"

    def error(self, field: str, problem: str) -> RecordError:
        return RecordError(f"{self}: field '{field}' {problem}")


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python will print
        return f"a {type(value).__name__} too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _required(raw: dict, key: str, where: Where) -> Any:
    if key not in raw:
        raise where.error(key, "is missing")
    return raw[key]


def _string(value: Any, where: Where, field: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise where.error(field, f"is {_describe(value)}, expected a string")
    if not allow_empty and not value.strip():
        raise where.error(field, "is empty")
    return value


def _integer(value: Any, where: Where, field: str, minimum: int | None = None) -> int:
    """An int, or a float with an integral value (JSON writers sometimes emit 912.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(field, f"is {_describe(value)}, expected an integer")
    if not -(2**63) <= value < 2**63:
        raise where.error(field, f"is {_describe(value)}, outside the 64-bit integer range")
    if minimum is not None and value < minimum:
        raise where.error(field, f"is {value}, expected at least {minimum}")
    return value


def _number(value: Any, where: Where, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(field, f"is {_describe(value)}, expected a number")
    try:
        number = float(value)
    except OverflowError:
        raise where.error(field, f"is {_describe(value)}, too large for a float") from None
    if not math.isfinite(number):
        raise where.error(field, f"is {number}, expected a finite number")
    return number


def _record_id(raw: Any, key: str) -> str | None:
    """The id used in messages, read before the record is validated (never raises)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return str(value)
    return None


def _mapping(raw: Any, where: Where) -> dict:
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: is {_describe(raw)}, expected a JSON object")
    return raw


# ---------------------------------------------------------------------------------------
# Media paths
# ---------------------------------------------------------------------------------------


def resolve_media(root: str | os.PathLike, relative: Any, where: Where, field: str, must_exist: bool = True) -> Path:
    """``root / relative``, refusing any path that leaves ``root`` (``..``, absolute,
    symlinks pointing out). Returns the resolved absolute path."""
    relative = _string(relative, where, field)
    if "\x00" in relative:
        raise where.error(field, "contains a NUL character")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise where.error(field, f"is the absolute path {relative!r}; media paths must be relative to {root}")
    if ".." in Path(relative.replace("\\", "/")).parts:
        raise where.error(field, f"is {relative!r}, which climbs out of the media folder with '..'")
    try:
        base = Path(root).resolve()
        resolved = (base / relative).resolve()
        if not resolved.is_relative_to(base):
            raise where.error(field, f"is {relative!r}, which resolves to {resolved}, outside the media folder {base}")
        if must_exist and not resolved.is_file():
            raise where.error(field, f"is {relative!r}, but {resolved} is not a file")
    except (OSError, RuntimeError) as error:  # name too long, symlink loop
        raise where.error(field, f"is {_describe(relative)}, which cannot be resolved ({error})") from None
    return resolved


# ---------------------------------------------------------------------------------------
# Shared pieces of the training records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One conversation entry: ``speaker`` is "human" or "gpt"."""

    speaker: str
    text: str


@dataclass(frozen=True)
class SceneSpan:
    """A scene as frame indices of the source video; ``end_frame`` is exclusive."""

    start_frame: int
    end_frame: int
    start_fps: float
    end_fps: float

    @property
    def start_s(self) -> float:
        return self.start_frame / self.start_fps

    @property
    def end_s(self) -> float:
        return self.end_frame / self.end_fps


def _conversations(value: Any, where: Where, field: str = "conversations") -> tuple[Turn, ...]:
    """Alternating human/gpt turns, starting with human, ending with gpt."""
    if not isinstance(value, list) or not value:
        raise where.error(field, f"is {_describe(value)}, expected a non-empty list of turns")
    if len(value) % 2:
        raise where.error(field, f"has {len(value)} entries, expected human/gpt pairs (an even number)")
    turns = []
    for i, entry in enumerate(value):
        name = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise where.error(name, f"is {_describe(entry)}, expected an object with 'from' and 'value'")
        speaker = entry.get("from")
        expected = SPEAKERS[i % 2]
        if speaker != expected:
            raise where.error(f"{name}.from", f"is {_describe(speaker)}, expected {expected!r} (turns alternate human/gpt)")
        turns.append(Turn(speaker, _string(entry.get("value"), where, f"{name}.value")))
    return tuple(turns)


def _scenes(value: Any, where: Where) -> tuple[SceneSpan, ...]:
    """Scenes in temporal order, non-empty and non-overlapping."""
    if not isinstance(value, list) or not value:
        raise where.error("scenes", f"is {_describe(value)}, expected a non-empty list of scenes")
    scenes = []
    for i, entry in enumerate(value):
        name = f"scenes[{i}]"
        if not isinstance(entry, dict):
            raise where.error(name, f"is {_describe(entry)}, expected an object")
        start = _integer(_required_field(entry, "start_frame", where, name), where, f"{name}.start_frame", minimum=0)
        end = _integer(_required_field(entry, "end_frame", where, name), where, f"{name}.end_frame")
        if end <= start:
            raise where.error(f"{name}.end_frame", f"is {end}, expected more than start_frame {start}")
        fps = [_number(_required_field(entry, key, where, name), where, f"{name}.{key}") for key in ("start_fps", "end_fps")]
        for key, rate in zip(("start_fps", "end_fps"), fps):
            if rate <= 0:
                raise where.error(f"{name}.{key}", f"is {rate}, expected a positive frame rate")
        if scenes and start < scenes[-1].end_frame:
            raise where.error(f"{name}.start_frame", f"is {start}, before the previous scene's end_frame {scenes[-1].end_frame}")
        scenes.append(SceneSpan(start, end, fps[0], fps[1]))
    return tuple(scenes)


def _required_field(entry: dict, key: str, where: Where, parent: str) -> Any:
    if key not in entry:
        raise where.error(f"{parent}.{key}", "is missing")
    return entry[key]


def _matrix(value: Any, where: Where, field: str, shape: tuple[int, int], meaning: str) -> np.ndarray:
    """A list of lists of finite numbers with the given shape -> float64 array."""
    rows, cols = shape
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise where.error(field, f"is {_describe(value)}, expected a list of rows")
    lengths = {len(row) for row in value}
    if len(lengths) > 1:
        raise where.error(field, f"is ragged (row lengths {sorted(lengths)}), expected {rows}x{cols} ({meaning})")
    found = (len(value), lengths.pop() if lengths else 0)
    if found != (rows, cols):
        raise where.error(field, f"has shape {found[0]}x{found[1]}, expected {rows}x{cols} ({meaning})")
    numbers = [[_number(x, where, f"{field}[{r}][{c}]") for c, x in enumerate(row)] for r, row in enumerate(value)]
    return np.asarray(numbers, dtype=np.float64).reshape(rows, cols)


# ---------------------------------------------------------------------------------------
# Label rules
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelThresholds:
    """The reference thresholds (LanguageBind V2T, SBERT T2T) and the focus cap K.
    They are scorer-specific: re-tune them for other similarity models."""

    t2t: float = 0.83
    v2t_longvideo: float = 0.21
    v2t_sft: float = 0.20
    focus_k: int = 5


@dataclass(frozen=True, eq=False)
class RouterLabels:
    labels: np.ndarray  # (N, T) bool, rows = captions or questions
    fallback_rows: tuple[int, ...]  # rows that had no positive and took the argmax


def _with_argmax_fallback(labels: np.ndarray, scores: np.ndarray) -> RouterLabels:
    empty = np.flatnonzero(~labels.any(axis=1))
    labels = labels.copy()
    labels[empty, scores[empty].argmax(axis=1)] = True
    return RouterLabels(labels, tuple(int(r) for r in empty))


def longvideo_labels(sen_sim: np.ndarray, lb_sim: np.ndarray, t2t: float = 0.83, v2t: float = 0.21) -> RouterLabels:
    """Stage 1.5: y = (T2T > t2t) | (V2T > v2t) per caption row; (N, T) each.

    With self-similarity on the diagonal of ``sen_sim`` a caption's own scene is always
    positive. A row without any positive (a corpus whose diagonal is not ~1) would give an
    empty focus in the released code; here it falls back to its argmax-T2T scene and is
    listed in ``fallback_rows`` (callers report it)."""
    sen_sim, lb_sim = np.asarray(sen_sim, dtype=np.float64), np.asarray(lb_sim, dtype=np.float64)
    return _with_argmax_fallback((sen_sim > t2t) | (lb_sim > v2t), sen_sim)


def sft_labels(lb_sim: np.ndarray, v2t: float = 0.20) -> RouterLabels:
    """Stage 2: y = V2T > v2t per question row (N, T), one-hot argmax V2T where none is."""
    lb_sim = np.asarray(lb_sim, dtype=np.float64)
    return _with_argmax_fallback(lb_sim > v2t, lb_sim)


def focus_scenes(labels_row: np.ndarray, v2t_row: np.ndarray, k: int) -> np.ndarray:
    """The scenes whose local tokens the LLM sees in training: the positives of one row,
    at most k of them, the k best by V2T among the positives (ties -> earlier scene),
    returned in temporal order. (T,) bool, (T,) float -> (<= k,) int64 ascending."""
    positives = np.flatnonzero(labels_row)
    if len(positives) == 0:
        raise ValueError("focus_scenes: the label row has no positive scene; apply the argmax fallback first")
    best = positives[np.argsort(-np.asarray(v2t_row)[positives], kind="stable")[:k]]
    return np.sort(best)


# ---------------------------------------------------------------------------------------
# Training records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage1Record:
    id: str
    media: Path  # absolute, inside the media folder
    media_kind: str  # "image" or "video"
    conversations: tuple[Turn, ...]
    source: str  # "file record i (id=...)", for later messages

    @property
    def caption(self) -> str:
        """The gpt text: the LM target and the router query of stage 1."""
        return self.conversations[-1].text


@dataclass(frozen=True, eq=False)
class SceneWalkRecord:
    id: str
    video: Path
    clip_num: int | None
    scenes: tuple[SceneSpan, ...]  # T
    sen_sim: np.ndarray  # (T, T) T2T, row = caption, column = scene
    lb_sim: np.ndarray  # (T, T) V2T, row = caption, column = scene
    conversations: tuple[Turn, ...]  # 2T
    source: str

    @property
    def captions(self) -> tuple[str, ...]:
        return tuple(turn.text for turn in self.conversations[1::2])

    def router_labels(self, thresholds: LabelThresholds = LabelThresholds()) -> RouterLabels:
        result = longvideo_labels(self.sen_sim, self.lb_sim, thresholds.t2t, thresholds.v2t_longvideo)
        if result.fallback_rows:
            warnings.warn(
                f"{self.source}: caption rows {list(result.fallback_rows)} have no positive scene "
                f"(sen_sim > {thresholds.t2t} or lb_sim > {thresholds.v2t_longvideo}); using their argmax-T2T scene",
                RuntimeWarning,
                stacklevel=2,
            )
        return result


@dataclass(frozen=True, eq=False)
class SFTRecord:
    id: str
    video: Path
    scenes: tuple[SceneSpan, ...]  # T
    lb_sim: np.ndarray  # (Q, T) V2T, row = question (human turn), column = scene
    conversations: tuple[Turn, ...]  # 2Q
    source: str
    router_questions: tuple[str, ...] = ()  # E more router queries that the LLM never sees
    router_lb_sim: np.ndarray | None = None  # (E, T) their V2T rows

    @property
    def questions(self) -> tuple[str, ...]:
        """The router queries: the human turns as `router_query_text` reads them."""
        return tuple(router_query_text(turn.text) for turn in self.conversations[0::2])

    def router_labels(self, thresholds: LabelThresholds = LabelThresholds()) -> RouterLabels:
        return sft_labels(self.lb_sim, thresholds.v2t_sft)

    def router_only_labels(self, thresholds: LabelThresholds = LabelThresholds()) -> RouterLabels:
        """Labels of `router_questions`, by the same rule as the conversation's questions."""
        return sft_labels(self.router_lb_sim, thresholds.v2t_sft)


def router_query_text(text: str) -> str:
    """What the router scores the scenes against: a question without its media placeholders,
    and without its option lines and whatever follows them (a multiple-choice instruction).
    Training (stage-2 records) and evaluation (evals.lmms_model) read questions by this one rule,
    so the router never sees at inference a form of question it was not trained on."""
    text = _strip_placeholders(text)
    cut = _OPTION_LINE.search(text)
    return (text[: cut.start()] if cut else text).strip()


def _strip_placeholders(text: str) -> str:
    for placeholder in MEDIA_PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return text.strip()


def parse_stage1(raw: Any, where: Where, media_root: str | os.PathLike, check_media: bool = True,
                 video_root: str | os.PathLike | None = None) -> Stage1Record:  # fmt: skip
    """Images resolve under ``media_root``, videos under ``video_root`` (default: the same)."""
    raw = _mapping(raw, where)
    record_id = _id(raw, where)
    kinds = [kind for kind in ("image", "video") if kind in raw]
    if len(kinds) != 1:
        raise where.error("image/video", f"has {kinds or 'neither'}, expected exactly one of 'image' or 'video'")
    root = video_root if kinds[0] == "video" and video_root is not None else media_root
    media = resolve_media(root, raw[kinds[0]], where, kinds[0], check_media)
    return Stage1Record(record_id, media, kinds[0], _conversations(_required(raw, "conversations", where), where), str(where))


def parse_scenewalk(raw: Any, where: Where, video_root: str | os.PathLike, check_media: bool = True) -> SceneWalkRecord:
    raw = _mapping(raw, where)
    record_id = _id(raw, where)
    video = resolve_media(video_root, _required(raw, "video", where), where, "video", check_media)
    scenes = _scenes(_required(raw, "scenes", where), where)
    count = len(scenes)
    clip_num = raw.get("clip_num")
    if clip_num is not None and _integer(clip_num, where, "clip_num") != count:
        raise where.error("clip_num", f"is {clip_num}, but 'scenes' lists {count} scenes")
    square = "one row and column per scene"
    sen_sim = _matrix(_required(raw, "sen_sim", where), where, "sen_sim", (count, count), square)
    lb_sim = _matrix(_required(raw, "lb_sim", where), where, "lb_sim", (count, count), square)
    conversations = _conversations(_required(raw, "conversations", where), where)
    if len(conversations) != 2 * count:
        raise where.error("conversations", f"has {len(conversations)} entries, expected {2 * count} (2 per scene)")
    return SceneWalkRecord(record_id, video, clip_num, scenes, sen_sim, lb_sim, conversations, str(where))


def parse_sft(raw: Any, where: Where, video_root: str | os.PathLike, check_media: bool = True) -> SFTRecord:
    raw = _mapping(raw, where)
    record_id = _id(raw, where)
    video = resolve_media(video_root, _required(raw, "video", where), where, "video", check_media)
    scenes = _scenes(_required(raw, "scenes", where), where)
    conversations = _conversations(_required(raw, "conversations", where), where)
    questions = len(conversations) // 2
    shape = (questions, len(scenes))
    lb_sim = _matrix(_required(raw, "lb_sim", where), where, "lb_sim", shape, "one row per question, one column per scene")
    extra, extra_sim = _router_questions(raw.get("router_questions", []), where, len(scenes))
    return SFTRecord(record_id, video, scenes, lb_sim, conversations, str(where), extra, extra_sim)


def _router_questions(value: Any, where: Where, scenes: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Optional `router_questions`: [{"question": str, "lb_sim": [T numbers]}, ...], queries that
    train the router only (the LLM never reads them) -> (texts, (E, T) V2T rows)."""
    if not isinstance(value, list):
        raise where.error("router_questions", f"is {_describe(value)}, expected a list")
    texts, rows = [], []
    for i, entry in enumerate(value):
        field = f"router_questions[{i}]"
        if not isinstance(entry, dict):
            raise where.error(field, f"is {_describe(entry)}, expected an object with 'question' and 'lb_sim'")
        texts.append(router_query_text(_string(_required_field(entry, "question", where, field), where, f"{field}.question")))
        rows.append(_required_field(entry, "lb_sim", where, field))
    if not rows:
        return (), np.zeros((0, scenes))
    return tuple(texts), _matrix(rows, where, "router_questions[*].lb_sim", (len(rows), scenes), "one number per scene")


def _id(raw: dict, where: Where) -> str:
    """A string id; integer ids (some published files use them) become strings."""
    value = _required(raw, "id", where)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(_integer(value, where, "id"))
    return _string(value, where, "id")


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def read_rows(path: str | os.PathLike) -> list[Any]:
    """The raw records of a JSON list (.json), JSON lines (.jsonl) or parquet file."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise RecordError(f"{path}: cannot read the file ({error})") from None
    if suffix == ".jsonl":
        return [_json(line, path, f"line {n + 1}") for n, line in enumerate(text.splitlines()) if line.strip()]
    if suffix == ".json":
        rows = _json(text, path, "the file")
        if not isinstance(rows, list):
            raise RecordError(f"{path}: holds {type(rows).__name__}, expected a JSON list of records")
        return rows
    raise RecordError(f"{path}: unknown record format {suffix!r}, expected .json, .jsonl or .parquet")


def _json(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: {what} is not valid JSON ({error})") from None


def _load(path: str | os.PathLike, parse: Callable, id_key: str, **kwargs) -> list:
    name = os.fspath(path)
    records, seen = [], {}
    for index, raw in enumerate(read_rows(path)):
        where = Where(name, index, _record_id(raw, id_key))
        record = parse(raw, where, **kwargs)
        if record.id in seen:
            raise where.error(id_key, f"repeats the id of record {seen[record.id]}")
        seen[record.id] = index
        records.append(record)
    return records


def load_stage1(path: str | os.PathLike, media_root: str | os.PathLike, check_media: bool = True,
                video_root: str | os.PathLike | None = None) -> list[Stage1Record]:  # fmt: skip
    """Stage-1 records; images under ``media_root`` (IMAGE_FOLDER), videos under
    ``video_root`` (VIDEO_FOLDER, default: ``media_root``)."""
    return _load(path, parse_stage1, "id", media_root=media_root, check_media=check_media, video_root=video_root)


def load_scenewalk(path: str | os.PathLike, video_root: str | os.PathLike, check_media: bool = True) -> list[SceneWalkRecord]:
    return _load(path, parse_scenewalk, "id", video_root=video_root, check_media=check_media)


def load_sft(path: str | os.PathLike, video_root: str | os.PathLike, check_media: bool = True) -> list[SFTRecord]:
    return _load(path, parse_sft, "id", video_root=video_root, check_media=check_media)


# ---------------------------------------------------------------------------------------
# Benchmark question rows
# ---------------------------------------------------------------------------------------

VIDEOMME_DURATIONS = ("short", "medium", "long")
VIDEOMME_DOMAINS = ("Knowledge", "Film & Television", "Sports Competition", "Artistic Performance", "Life Record", "Multilingual")
VIDEOMME_SUB_CATEGORIES = (
    "Humanity & History", "Literature & Art", "Biology & Medicine", "Finance & Commerce", "Astronomy", "Geography",
    "Law", "Life Tip", "Technology", "Animation", "Movie & TV Show", "Documentary", "News Report", "Esports",
    "Basketball", "Football", "Athletics", "Other Sports", "Stage Play", "Magic Show", "Variety Show", "Acrobatics",
    "Handicraft", "Food", "Fashion", "Daily Life", "Travel", "Pet & Animal", "Exercise", "Multilingual",
)  # fmt: skip
VIDEOMME_TASK_TYPES = (
    "Temporal Perception", "Spatial Perception", "Attribute Perception", "Action Recognition", "Object Recognition",
    "OCR Problems", "Counting Problem", "Temporal Reasoning", "Spatial Reasoning", "Action Reasoning",
    "Object Reasoning", "Information Synopsis",
)  # fmt: skip
MLVU_DEV_TASK_TYPES = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")
LVB_DURATION_GROUPS = (15, 60, 600, 3600)
LVB_OPTION_COUNT = 5
LVB_UNUSED_OPTION = "N/A"


@dataclass(frozen=True, eq=False)
class Question:
    """One multiple-choice question, whatever the benchmark."""

    benchmark: str  # "videomme", "mlvu", "longvideobench" or "niah"
    id: str
    video: Path
    question: str  # the question text without the options
    options: tuple[str, ...]  # option texts without their letters
    answer: str  # the correct letter, "A", "B", ...
    categories: dict[str, str]  # the benchmark's own category fields
    answer_scene: int | None  # index of the scene holding the answer (synthetic sets)
    answer_span_s: tuple[float, float] | None  # that scene's start and end in seconds
    row: dict  # the official row as read, for lmms-eval's task functions


def _answer_scene(row: dict, where: Where) -> tuple[int | None, tuple[float, float] | None]:
    """The optional extra columns of the synthetic sets: answer_scene, answer_start_s, answer_end_s."""
    if row.get("answer_scene") is None:
        return None, None
    scene = _integer(row["answer_scene"], where, "answer_scene", minimum=0)
    start = _number(_required(row, "answer_start_s", where), where, "answer_start_s")
    end = _number(_required(row, "answer_end_s", where), where, "answer_end_s")
    if not 0 <= start < end:
        raise where.error("answer_end_s", f"is {end}, expected more than answer_start_s {start} >= 0")
    return scene, (start, end)


def _choice(value: Any, where: Where, field: str, allowed: Sequence) -> Any:
    if value not in allowed or isinstance(value, bool):
        raise where.error(field, f"is {_describe(value)}, expected one of {list(allowed)}")
    return value


def _letter(value: Any, where: Where, field: str, option_count: int) -> str:
    return _choice(value, where, field, list(LETTERS[:option_count]))


def _string_list(value: Any, where: Where, field: str, minimum: int = 2) -> list[str]:
    if not isinstance(value, list) or len(value) < minimum:
        raise where.error(field, f"is {_describe(value)}, expected a list of at least {minimum} strings")
    return [_string(item, where, f"{field}[{i}]") for i, item in enumerate(value)]


def parse_videomme(raw: Any, where: Where, root: str | os.PathLike, check_media: bool = True) -> Question:
    """A Video-MME row; the video is ``root/data/<videoID>.mp4``."""
    row = _mapping(raw, where)
    text = {key: _string(_required(row, key, where), where, key, allow_empty=key == "url")
            for key in ("video_id", "duration", "domain", "sub_category", "url", "videoID", "question_id", "task_type", "question", "answer")}  # fmt: skip
    _choice(text["duration"], where, "duration", VIDEOMME_DURATIONS)
    _choice(text["domain"], where, "domain", VIDEOMME_DOMAINS)
    _choice(text["sub_category"], where, "sub_category", VIDEOMME_SUB_CATEGORIES)
    _choice(text["task_type"], where, "task_type", VIDEOMME_TASK_TYPES)
    options = _string_list(_required(row, "options", where), where, "options")
    if len(options) > len(LETTERS):
        raise where.error("options", f"has {len(options)} options, expected at most {len(LETTERS)}")
    for i, option in enumerate(options):
        if not option.startswith(f"{LETTERS[i]}. "):
            raise where.error(f"options[{i}]", f"is {_describe(option)}, expected it to start with '{LETTERS[i]}. '")
    answer = _letter(text["answer"], where, "answer", len(options))
    video = resolve_media(root, f"data/{text['videoID']}.mp4", where, "videoID", check_media)
    scene, span = _answer_scene(row, where)
    categories = {key: text[key] for key in ("duration", "domain", "sub_category", "task_type")}
    return Question("videomme", text["question_id"], video, text["question"], tuple(o[3:] for o in options), answer,
                    categories, scene, span, row)  # fmt: skip


def parse_mlvu(raw: Any, where: Where, root: str | os.PathLike, check_media: bool = True) -> Question:
    """An MLVU dev row (sy1998 schema): the options are inside ``question`` as "(A) ..."
    lines, ``candidates`` lists them; the video is ``root/<video_name>``."""
    row = _mapping(raw, where)
    text = {key: _string(_required(row, key, where), where, key)
            for key in ("video_name", "question", "answer", "task_type", "question_id")}  # fmt: skip
    _number(_required(row, "duration", where), where, "duration")
    _choice(text["task_type"], where, "task_type", MLVU_DEV_TASK_TYPES)
    candidates = _string_list(_required(row, "candidates", where), where, "candidates")
    if len(candidates) > len(LETTERS):
        raise where.error("candidates", f"has {len(candidates)} candidates, expected at most {len(LETTERS)}")
    stem, found, _ = text["question"].partition("\n(A) ")
    if not found or not stem.strip():
        raise where.error("question", "does not hold a question followed by its options as '\\n(A) ...' lines")
    answer = _letter(text["answer"], where, "answer", len(candidates))
    video = resolve_media(root, text["video_name"], where, "video_name", check_media)
    scene, span = _answer_scene(row, where)
    return Question("mlvu", text["question_id"], video, stem.strip(), tuple(candidates), answer,
                    {"task_type": text["task_type"]}, scene, span, row)  # fmt: skip


def parse_longvideobench(raw: Any, where: Where, root: str | os.PathLike, check_media: bool = True) -> Question:
    """A LongVideoBench row; options option0..option4 ("N/A" when unused, only at the
    end); ``correct_choice`` is an index; the video is ``root/videos/<video_path>``."""
    row = _mapping(raw, where)
    text = {key: _string(_required(row, key, where), where, key)
            for key in ("video_id", "id", "video_path", "subtitle_path", "question", "question_category", "topic_category")}  # fmt: skip
    options = [_string(_required(row, f"option{i}", where), where, f"option{i}") for i in range(LVB_OPTION_COUNT)]
    used = [option for option in options if option != LVB_UNUSED_OPTION]
    if len(used) < 2 or options[: len(used)] != used:
        raise where.error("option0..option4", f"are {_describe(options)}, expected at least 2 options, then only 'N/A'")
    correct = _integer(_required(row, "correct_choice", where), where, "correct_choice", minimum=0)
    if correct >= len(used):
        raise where.error("correct_choice", f"is {correct}, but only {len(used)} options are given")
    _number(_required(row, "duration", where), where, "duration")
    group = _choice(_integer(_required(row, "duration_group", where), where, "duration_group"), where, "duration_group",
                    LVB_DURATION_GROUPS)  # fmt: skip
    _number(_required(row, "starting_timestamp_for_subtitles", where), where, "starting_timestamp_for_subtitles")
    video = resolve_media(Path(root) / "videos", text["video_path"], where, "video_path", check_media)
    scene, span = _answer_scene(row, where)
    categories = {"duration_group": str(group), "question_category": text["question_category"],
                  "topic_category": text["topic_category"]}  # fmt: skip
    return Question("longvideobench", text["id"], video, text["question"], tuple(used), LETTERS[correct],
                    categories, scene, span, row)  # fmt: skip


def parse_niah(raw: Any, where: Where, root: str | os.PathLike, check_media: bool = True) -> Question:
    """A synthetic needle-in-a-haystack row: Video-MME's schema plus ``haystack_minutes``
    and ``needle_depth`` (percent), both also given as categories."""
    question = parse_videomme(raw, where, root, check_media)
    minutes = _number(_required(question.row, "haystack_minutes", where), where, "haystack_minutes")
    if minutes <= 0:
        raise where.error("haystack_minutes", f"is {minutes}, expected a positive length")
    depth = _integer(_required(question.row, "needle_depth", where), where, "needle_depth", minimum=0)
    if depth > 100:
        raise where.error("needle_depth", f"is {depth}, expected a percentage 0..100")
    categories = question.categories | {"haystack_minutes": f"{minutes:g}", "needle_depth": str(depth)}
    return replace(question, benchmark="niah", categories=categories)


QUESTION_PARSERS = {"videomme": (parse_videomme, "question_id"), "mlvu": (parse_mlvu, "question_id"),
                    "longvideobench": (parse_longvideobench, "id"), "niah": (parse_niah, "question_id")}  # fmt: skip


def load_questions(path: str | os.PathLike, benchmark: str, root: str | os.PathLike | None = None,
                   check_media: bool = True) -> list[Question]:  # fmt: skip
    """Question rows of ``benchmark`` ("videomme", "mlvu", "longvideobench", "niah") from a parquet,
    JSON or JSONL file. ``root`` is the benchmark folder laid out like the public download
    (videomme: ``data/<videoID>.mp4``; mlvu: ``<video_name>``; longvideobench:
    ``videos/<video_path>``); by default the folder holding ``path``."""
    if benchmark not in QUESTION_PARSERS:
        raise RecordError(f"{path}: unknown benchmark {benchmark!r}, expected one of {sorted(QUESTION_PARSERS)}")
    parse, id_key = QUESTION_PARSERS[benchmark]
    root = Path(path).parent if root is None else Path(root)
    return _load(path, parse, id_key, root=root, check_media=check_media)
