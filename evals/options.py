"""The options of a multiple-choice benchmark record, for answering by option likelihood.

`python -m evals.run --answer-by likelihood` scores each option's text as the model's whole reply
to the question (without the option list) and answers with the letter of the most likely one,
the way language-model harnesses score cloze-style multiple choice. The task's own scoring then
reads that letter as it reads a generated one.
"""

from __future__ import annotations

import re

from evals.benchmarks import TASK_TO_BENCHMARK
from salova.errors import RecordError

ANSWER_BY = ("generate", "likelihood")
_LETTER_PREFIX = re.compile(r"^\s*\(?[A-Z][.):]\s*")
_NO_OPTION = ("", "N/A")


def record_options(task: str, doc: dict) -> list[str | None]:
    """Option texts by letter position (A, B, ...); None where a position holds no option
    (LongVideoBench pads to five with "N/A"). Fields: Video-MME and NIAH `options` ("A. red"),
    MLVU `candidates`, LongVideoBench `candidates` or `option0`..`option4`."""
    benchmark = TASK_TO_BENCHMARK.get(task, task)
    if benchmark in ("videomme", "niah"):
        options = [_LETTER_PREFIX.sub("", str(o)) for o in _field(doc, "options", task)]
    elif benchmark == "mlvu" or "candidates" in doc:
        options = [str(o) for o in _field(doc, "candidates", task)]
    elif benchmark == "longvideobench":
        options = [str(doc[f"option{i}"]) if doc.get(f"option{i}") is not None else "" for i in range(5)]
    else:
        raise RecordError(f"{task}: answering by option likelihood knows no option field for this task")
    options = [None if o.strip() in _NO_OPTION else o.strip() for o in options]
    if not any(options):
        raise RecordError(f"{task} record {doc.get('question_id', doc.get('id'))}: no options to score")
    return options


def _field(doc: dict, name: str, task: str) -> list:
    if not isinstance(doc.get(name), (list, tuple)) or not doc[name]:
        raise RecordError(f"{task} record {doc.get('question_id', doc.get('id'))}: field {name!r} "
                          f"is not a list of options ({doc.get(name)!r})")  # fmt: skip
    return list(doc[name])


def named_options(question: str, options: list[str | None]) -> list[str]:
    """Letters of the options whose text the question itself contains as whole words ("the scene
    with a purple object" names the option "purple"): a wrong answer that a model which copies its
    prompt, or reads the named scene's other attribute, gives. evals.diagnostics.named_option_split
    counts how often it does."""
    return [chr(65 + i) for i, option in enumerate(options)
            if option and re.search(rf"\b{re.escape(option.lower())}\b", question.lower())]  # fmt: skip


def cloze(option: str) -> str:
    """An option as a whole reply, in the short-answer form of the SFT records: "red" -> "Red."."""
    text = option[0].upper() + option[1:]
    return text if text[-1] in ".!?" else text + "."
