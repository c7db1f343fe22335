"""SalovaProcessor and the byte tokenizer: placeholder ids, assistant-only labels, right-padded
queries whose masks come from lengths (a real token equal to the pad id is kept), save/load."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.errors import CheckpointError, RecordError
from salova.processing import SalovaProcessor
from salova.tokenizer import SPECIAL_TOKENS, byte_tokenizer

CONFIG = SalovaConfig.from_preset("tiny")
IMAGE = CONFIG.image_token_index


def make_processor(**overrides) -> SalovaProcessor:
    return SalovaProcessor.for_config(SalovaConfig.from_preset("tiny", **overrides))


@given(text=st.text(max_size=40))
def test_byte_tokenizer_ids_are_the_utf8_bytes_and_round_trip(text):
    tokenizer = byte_tokenizer()
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids == list(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text


def test_byte_tokenizer_special_tokens_follow_the_bytes():
    tokenizer = byte_tokenizer()
    assert len(tokenizer) == 256 + len(SPECIAL_TOKENS) == CONFIG.llm_config["vocab_size"]
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(256, 256 + len(SPECIAL_TOKENS)))
    assert tokenizer("<|im_end|>", add_special_tokens=False).input_ids == [259]


def test_prompt_has_one_placeholder_and_ends_with_the_assistant_header():
    processor = make_processor()
    ids = processor.prompt("What is red?")
    assert (ids == IMAGE).sum() == 1
    text = byte_tokenizer().decode([int(i) for i in ids if i >= 0])
    assert text.endswith("<|im_start|>user\n\nWhat is red?<|im_end|>\n<|im_start|>assistant\n")


def test_conversation_labels_only_the_assistant_turns():
    processor = make_processor()
    turns = [{"from": "human", "value": "<video>\nWhat is shown?"}, {"from": "gpt", "value": "A dog!"},
             {"from": "human", "value": "And then?"}, {"from": "gpt", "value": "It runs."}]
    ids, labels = processor.conversation(turns)
    assert ids.shape == labels.shape and (ids == IMAGE).sum() == 1
    trained = labels[labels != -100]
    assert byte_tokenizer().decode(trained.tolist()) == "A dog!<|im_end|>It runs.<|im_end|>"
    assert torch.equal(labels[labels != -100], ids[labels != -100])


def test_conversation_without_placeholder_gets_one_before_the_first_question():
    ids, _ = make_processor(chat_template="plain").conversation([("user", "Describe."), ("assistant", "A cat.")])
    assert ids.tolist() == [IMAGE, *b"A cat.\n"]


def test_two_placeholders_are_rejected():
    with pytest.raises(RecordError, match="placeholders"):
        make_processor().conversation([("user", "<image> and <image>"), ("assistant", "no")])


def test_queries_are_right_padded_with_masks_from_lengths():
    ids, mask = make_processor().queries(["<image>\nhello", "a"])
    assert ids[0].tolist() == [*b"hello", 259] and mask[0].tolist() == [1] * 6
    assert ids[1, :2].tolist() == [ord("a"), 259] and mask[1].tolist() == [1, 1, 0, 0, 0, 0]


def test_no_token_is_removed_when_it_equals_the_pad_id():
    # Qwen's fallback pad id 0 is "!": here the pad token *is* "!" (id 33).
    processor = make_processor()
    for tokenizer in (processor.tokenizer, processor.text_tokenizer):
        tokenizer.pad_token = "!"
    assert processor.text_tokenizer.pad_token_id == ord("!")
    ids, mask = processor.queries(["Wow!!", "a"])
    assert ids[0].tolist() == [*b"Wow!!", 259] and mask[0].sum() == 6
    conversation_ids, labels = processor.conversation([("user", "Hi!"), ("assistant", "Yes!")])
    assert (conversation_ids == ord("!")).sum() == 2
    assert byte_tokenizer().decode(labels[labels != -100].tolist()) == "Yes!<|im_end|>"


def test_processor_round_trips_through_a_checkpoint_directory(tmp_path):
    processor = make_processor(chat_template="llama3.2")
    processor.config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = SalovaProcessor.from_pretrained(tmp_path)
    assert loaded.config.chat_template == "llama3.2"
    assert torch.equal(loaded.prompt("Who?"), processor.prompt("Who?"))
    for a, b in zip(loaded.queries(["x y", "zz top"]), processor.queries(["x y", "zz top"])):
        assert torch.equal(a, b)


def test_missing_tokenizer_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="tokenizer"):
        SalovaProcessor.from_pretrained(tmp_path)
