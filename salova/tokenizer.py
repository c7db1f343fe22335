"""The offline tokenizers of the `tiny` and `small` presets (no download, no training).

- `byte_tokenizer` (`tiny`): every UTF-8 byte is one token (ids 0..255, in byte order),
  followed by the special tokens of all chat templates (256..269).
- `word_tokenizer` (`small`): the same ids, then each word the synthetic corpus writes
  (`SYNTHETIC_WORDS`) as one token, with and without a leading space. Text is split into words
  as GPT-2 does; a word in the list is one token, any other falls back to its bytes.

Either way the same text always gives the same ids and any text round-trips. Words as tokens
make a synthetic question about 20 tokens instead of about 90 bytes, as a real LLM's tokenizer
would, for the LLM and for the text tower that reads every router query.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, END_OF_TEXT, IM_START, IM_END, IMAGE = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"
SPECIAL_TOKENS = (
    PAD, END_OF_TEXT, IM_START, IM_END, IMAGE, "<video>",
    # Llama-3.2 chat template
    "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    # Phi-3.5 chat template
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
)


# Every word of the `small` corpus's captions, questions, options and answers (salova.data.synth,
# salova.data.more_questions; tests/test_tokenizer.py checks the corpus writes no other), the
# motion words of the other presets' captions, and the chat templates' role and system-prompt words.
SYNTHETIC_WORDS = (
    "A", "Answer", "B", "Based", "Black", "Blue", "Brown", "C", "Consider", "Cyan", "D", "Describe",
    "During", "E", "For", "From", "Give", "Gray", "Green", "I", "In", "Inside", "Look", "Magenta",
    "Name", "One", "Orange", "Please", "Purple", "Quick", "Red", "Render", "Say", "State", "Tell", "The",
    "What", "Which", "White", "Within", "Yellow", "a", "about", "an", "and", "answer", "appears", "assistant",
    "at", "background", "behind", "black", "blue", "briefly", "brown", "caption", "carefully", "choices",
    "circle", "clear", "clip", "color", "colour", "concise", "cross", "cyan", "detail", "diamond",
    "directly", "does", "down", "during", "figure", "for", "from", "give", "given", "gray", "green",
    "have", "image", "in", "inside", "is", "its", "label", "left", "letter", "magenta", "me", "mean",
    "moving", "name", "object", "of", "on", "option", "orange", "photo", "purple", "question", "red",
    "right", "ring", "s", "say", "scene", "shade", "shape", "short", "show", "shown", "square",
    "standing", "state", "still", "summary", "system", "tell", "that", "the", "there", "this",
    "triangle", "up", "used", "user", "video", "what", "which", "white", "with", "within", "yellow",
    "You", "are", "helpful",
)


def byte_to_symbol() -> dict[int, str]:
    """The byte-level BPE alphabet: each byte as a printable unicode character.

    Printable Latin-1 bytes stand for themselves; the others are shifted to 256 and above
    (the convention of byte-level BPE, which `pre_tokenizers.ByteLevel` applies to text).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    return symbols


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: ids 0..255 are the bytes, then `SPECIAL_TOKENS` in order (size 270)."""
    return _fast_tokenizer(_base_vocab(), split_words=False)


def word_tokenizer() -> PreTrainedTokenizerFast:
    """`byte_tokenizer`'s ids, then each of `SYNTHETIC_WORDS` alone and after a space, in order
    (a one-letter word alone is already its byte)."""
    return _fast_tokenizer(_word_vocab(), split_words=True)


def _word_vocab() -> dict[str, int]:
    vocab, symbols = _base_vocab(), byte_to_symbol()
    for word in SYNTHETIC_WORDS:
        for form in (word, " " + word):
            vocab.setdefault("".join(symbols[b] for b in form.encode()), len(vocab))
    return vocab


def _base_vocab() -> dict[str, int]:
    vocab = {symbol: byte for byte, symbol in byte_to_symbol().items()}
    vocab.update({token: 256 + index for index, token in enumerate(SPECIAL_TOKENS)})
    return vocab


def _fast_tokenizer(vocab: dict[str, int], split_words: bool) -> PreTrainedTokenizerFast:
    # No merges: a piece that is in the vocabulary is one token (ignore_merges), any other its bytes.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split_words)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=IM_END,
        bos_token=END_OF_TEXT,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, IM_END, END_OF_TEXT)],
    )
    tokenizer.padding_side = "right"
    return tokenizer


WORD_VOCAB_SIZE = len(_word_vocab())
# The tokenizers a model with no pretrained LLM can use, by `SalovaConfig.offline_tokenizer`.
OFFLINE_TOKENIZERS = {"bytes": byte_tokenizer, "words": word_tokenizer}


def offline_tokenizer(name: str) -> PreTrainedTokenizerFast:
    return OFFLINE_TOKENIZERS[name]()
