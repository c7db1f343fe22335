"""The `small` preset's word tokenizer: byte ids kept, each corpus word one token, any text
round-trips, and the synthetic corpus writes no word outside its list."""

import dataclasses
import json
import re

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.data import synth
from salova.data.more_questions import more_questions
from salova.processing import SalovaProcessor
from salova.tokenizer import SPECIAL_TOKENS, SYNTHETIC_WORDS, WORD_VOCAB_SIZE, byte_tokenizer, word_tokenizer

WORDS = word_tokenizer()
PROMPT_COLUMNS = {"question", "options", "candidates", *(f"option{i}" for i in range(5))}


@given(text=st.text(max_size=60))
def test_any_text_round_trips(text):
    assert WORDS.decode(WORDS(text, add_special_tokens=False).input_ids) == text


@given(text=st.text(alphabet="zqjkvx0123456789 !?'\n-", max_size=40))
def test_text_without_listed_words_is_its_bytes(text):
    # none of these letters makes a listed word, so every piece falls back to its bytes
    assert WORDS(text, add_special_tokens=False).input_ids == list(text.encode())


def test_each_listed_word_is_one_token_alone_and_after_a_space():
    for word in SYNTHETIC_WORDS:
        for form in (word, " " + word):
            ids = WORDS(form, add_special_tokens=False).input_ids
            assert len(ids) == 1, (form, ids)
            assert WORDS.decode(ids) == form
    assert WORDS("a", add_special_tokens=False).input_ids == [ord("a")]  # a one-letter word is its byte


def test_byte_and_special_ids_are_the_byte_tokenizers():
    assert len(WORDS) == WORD_VOCAB_SIZE == 270 + 2 * len(SYNTHETIC_WORDS) - sum(len(w) == 1 for w in SYNTHETIC_WORDS)
    assert [WORDS.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(256, 256 + len(SPECIAL_TOKENS)))
    bytes_only = byte_tokenizer()
    assert (WORDS.pad_token_id, WORDS.eos_token_id, WORDS.bos_token_id) == (
        bytes_only.pad_token_id, bytes_only.eos_token_id, bytes_only.bos_token_id)  # fmt: skip


def test_a_question_is_a_few_word_tokens_not_its_bytes():
    question = "In the scene with a cyan object, what colour is the background?"
    ids = WORDS(question, add_special_tokens=False).input_ids
    assert len(ids) == 12 + 2 and len(question.encode()) == 63  # 12 words, a comma and a question mark


def test_small_preset_uses_it_for_both_towers_and_saves_it(tmp_path):
    config = SalovaConfig.from_preset("small")
    assert config.llm_config["vocab_size"] == config.text_config["vocab_size"] == WORD_VOCAB_SIZE
    processor = SalovaProcessor.for_config(config)
    config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = SalovaProcessor.from_pretrained(tmp_path)
    question = "Which colour is the shape in the scene with a gray background?"
    for tokenizer in (loaded.tokenizer, loaded.text_tokenizer):
        assert tokenizer(question).input_ids == WORDS(question).input_ids
    assert SalovaProcessor.for_config(SalovaConfig.from_preset("tiny")).tokenizer("red").input_ids == list(b"red")


def corpus_texts(root) -> list[str]:
    texts = []
    for name in ("stage1.json", "scenewalk.json", "sft.json"):
        for record in json.loads((root / "train" / name).read_text()):
            texts += [turn["value"] for turn in record.get("conversations", [])]
    for record in more_questions(root, repeats=2, seed=1, questions=(1, 1), router_only=3):
        texts += [turn["value"] for turn in record["conversations"]] + [q["question"] for q in record["router_questions"]]
    for parquet in root.glob("*/*.parquet"):  # the columns the tasks' prompts are made of
        table = pd.read_parquet(parquet)
        for column in PROMPT_COLUMNS & set(table.columns):
            for value in table[column]:
                texts += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return texts


def test_the_small_corpus_writes_no_word_outside_the_list(tmp_path):
    preset = dataclasses.replace(synth.configure("small"), stage1_clips=20, stage1_images=4, train_videos=4,
                                 benchmark_videos=2, niah_minutes=(1,), niah_needles=1)  # fmt: skip
    synth.generate(preset, tmp_path, seed=3, show_progress=False)
    texts = corpus_texts(tmp_path)
    words = {w for text in texts for w in re.findall(r"[A-Za-z]+", text) if not re.fullmatch(r"synth_\w+", w)}
    assert len(texts) > 200 and words
    assert words <= set(SYNTHETIC_WORDS), sorted(words - set(SYNTHETIC_WORDS))
