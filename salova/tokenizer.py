"""The offline byte-level tokenizer of the `tiny` preset.

Every UTF-8 byte is one token (ids 0..255, in byte order), followed by the special tokens
of all chat templates. No merges, no training, no download: the same text always gives the
same ids, and any text round-trips. The `tiny` preset uses it for the LLM and the text tower.
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
    vocab = {symbol: byte for byte, symbol in byte_to_symbol().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
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
