"""Chat templates render the known structure of each backbone, and only assistant replies
(with their end-of-turn token) are trained."""

import pytest

from salova.chat import TEMPLATES, get_template
from salova.errors import ConfigError, RecordError

TURNS = [("user", "<image>\nWhat is shown?"), ("assistant", "A cat."), ("user", "Colour?"), ("assistant", "Black.")]

EXPECTED = {
    "qwen2.5": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<image>\nWhat is shown?<|im_end|>\n<|im_start|>assistant\nA cat.<|im_end|>\n"
        "<|im_start|>user\nColour?<|im_end|>\n<|im_start|>assistant\nBlack.<|im_end|>\n"
    ),
    "llama3.2": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
        "assistant. You are able to understand the visual content that the user provides, and assist the user "
        "with a variety of tasks using natural language.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<image>\nWhat is shown?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA cat.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nColour?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBlack.<|eot_id|>"
    ),
    "phi3.5": (
        "<|system|>\nYou are a helpful AI assistant.<|end|>\n"
        "<|user|>\n<image>\nWhat is shown?<|end|>\n<|assistant|>\nA cat.<|end|>\n"
        "<|user|>\nColour?<|end|>\n<|assistant|>\nBlack.<|end|>\n"
    ),
    "plain": "<image>A cat.\nBlack.\n",
}
TRAINED = {
    "qwen2.5": ["A cat.<|im_end|>", "Black.<|im_end|>"],
    "llama3.2": ["A cat.<|eot_id|>", "Black.<|eot_id|>"],
    "phi3.5": ["A cat.<|end|>", "Black.<|end|>"],
    "plain": ["A cat.\n", "Black.\n"],
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders_the_known_structure(name):
    pieces = get_template(name).render(TURNS)
    assert "".join(p.text for p in pieces) == EXPECTED[name]
    assert [p.text for p in pieces if p.trained] == TRAINED[name]


@pytest.mark.parametrize("name, header", [("qwen2.5", "<|im_start|>assistant\n"),
                                          ("llama3.2", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
                                          ("phi3.5", "<|assistant|>\n")])
def test_generation_prompt_ends_with_the_assistant_header(name, header):
    pieces = get_template(name).render([("user", "Hi")], add_generation_prompt=True)
    text = "".join(p.text for p in pieces)
    assert text.endswith(header) and not any(p.trained for p in pieces)


def test_system_prompt_can_be_replaced():
    text = "".join(p.text for p in get_template("qwen2.5").render([("user", "Hi")], system="Be brief."))
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_unknown_template_and_role_are_errors():
    with pytest.raises(ConfigError, match="vicuna"):
        get_template("vicuna")
    with pytest.raises(RecordError, match="narrator"):
        get_template("qwen2.5").render([("narrator", "Once upon a time")])
