"""Compositional question phrasings for stage-2 questions about a scene's colours.

A phrasing is a template with `{scene}` (the scene description, e.g. "the scene with a purple
object") and `{thing}` (the word for the moving shape). They are composed from a lead-in, one of
several sentence frames, and the words that fill the frame (wh-word, colour noun, preposition),
so the router's text tower sees thousands of wordings around the same scene description and can
learn to read the description rather than memorise a few sentences.

No phrasing shares a sequence of `HELD_OUT_NGRAM` words with a held-out template
(`synth.HELD_OUT_TEMPLATES`): the held-out questions stay held out in their wording, not only
as whole sentences (tests/test_phrasings.py checks every composable phrasing).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

import numpy as np

HELD_OUT_NGRAM = 4
LEADS = ("", "Quick question: ", "Please answer: ", "Based on the video, ", "From the video: ",
         "One question about the video. ", "Look carefully. ")  # fmt: skip
WH_WORDS = ("what", "which")
COLOUR_NOUNS = ("color", "colour", "shade")
PREPOSITIONS = ("in", "within", "during", "for", "inside")
THINGS = ("shape", "object", "figure")
COMMANDS = ("tell me", "name", "give", "state", "say")
TARGETS = {"background": "background", "shape_color": "{thing}"}
FRAMES = (
    "{wh} {colour} is the {target} {prep} {scene}?",
    "{Prep} {scene}, {wh} {colour} is the {target}?",
    "{command} the {colour} of the {target} {prep} {scene}.",
    "{scene}: {wh} {colour} is the {target}?",
    "Consider {scene}. {Wh} {colour} is its {target}?",
    "I mean {scene}. {Wh} {colour} is the {target} there?",
    "{wh} {colour} is used for the {target} {prep} {scene}?",
)


def words(text: str) -> list[str]:
    """Lower-case words of a template; `{scene}` and `{thing}` count as one word each."""
    return re.findall(r"\{\w+\}|[a-z']+", text.lower())


def ngrams(text: str, n: int = HELD_OUT_NGRAM) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)}


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:]


def _fill(frame: str, lead: str, asked: str, wh: str, colour: str, prep: str, command: str) -> str:
    text = frame.format(wh=wh, Wh=wh.capitalize(), colour=colour, target=TARGETS[asked], prep=prep,
                        Prep=prep.capitalize(), command=command, scene="{scene}", thing="{thing}")
    return lead + (text if lead.endswith(", ") else _capitalised(text))  # "{scene}..." stays: the question writer capitalises it


def composed(asked: str, held_out: Iterable[str]) -> list[str]:
    """Every composable phrasing asking the colour `asked` ("background" or "shape_color"),
    less those sharing a HELD_OUT_NGRAM-word sequence with a held-out template."""
    banned = set().union(*(ngrams(t) for t in held_out))
    phrasings = {_fill(frame, lead, asked, wh, colour, prep, command)
                 for frame, lead, wh, colour, prep, command
                 in itertools.product(FRAMES, LEADS, WH_WORDS, COLOUR_NOUNS, PREPOSITIONS, COMMANDS)}
    return sorted(p for p in phrasings if not ngrams(p) & banned)


def pick(rng: np.random.Generator, phrasings: list[str]) -> tuple[str, str]:
    """One phrasing and one word for `{thing}`."""
    return phrasings[int(rng.integers(len(phrasings)))], THINGS[int(rng.integers(len(THINGS)))]
