"""SalovaProcessor: text -> token ids for the LLM (prompts, training conversations) and for the
text tower (router queries).

- The `<image>` placeholder (`<video>` is read as the same thing) becomes
  `config.image_token_index` (-200), where the visual block is spliced in later.
- Conversation labels are -100 everywhere except the assistant turns (`salova/chat.py`).
- Router queries are right padded; their mask comes from each query's length, never from
  comparing ids with the pad id, so a real token equal to the pad id (Qwen's fallback pad 0
  is "!") is never dropped. Each query ends with the text tokenizer's end token, where the
  text tower reads the pooled vector.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from salova.chat import IMAGE, get_template
from salova.config import SalovaConfig
from salova.errors import CheckpointError, RecordError
from salova.modeling.focusfast import IGNORE_INDEX
from salova.tokenizer import offline_tokenizer

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
TOKENIZER_DIR, TEXT_TOKENIZER_DIR = "tokenizer", "text_tokenizer"


class SalovaProcessor:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, text_tokenizer: PreTrainedTokenizerBase,
                 config: SalovaConfig):
        self.tokenizer = tokenizer  # the LLM's
        self.text_tokenizer = text_tokenizer  # the text tower's
        self.config = config
        self.template = get_template(config.chat_template)

    @classmethod
    def for_config(cls, config: SalovaConfig) -> SalovaProcessor:
        """The offline tokenizer of `config.offline_tokenizer` (bytes for `tiny`, words for `small`)
        when no pretrained LLM is named, else the pretrained tokenizers."""
        if config.llm is None:
            return cls(offline_tokenizer(config.offline_tokenizer), offline_tokenizer(config.offline_tokenizer), config)
        return cls(AutoTokenizer.from_pretrained(config.llm), AutoTokenizer.from_pretrained(config.vision_tower),
                   config)

    # ------------------------------------------------------------ LLM side

    def prompt(self, question: str, system: str | None = None, with_video: bool = True) -> torch.Tensor:
        """Generation prompt for one question -> ids (N,), ending with the assistant header."""
        turns = [("user", question)]
        if with_video:
            turns = _with_placeholder(turns)
        ids, _ = self._encode(self.template.render(turns, system, add_generation_prompt=True))
        return ids

    def conversation(self, turns, system: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training sample -> ids (N,), labels (N,) with -100 except the assistant turns.

        turns: [{"from": "human"|"gpt", "value": ...}] (LLaVA records), [{"role", "content"}], or
        [(role, text)]. Exactly one `<image>` placeholder is kept; with none, it goes in front of
        the first user turn.
        """
        normalised = _with_placeholder([_turn(t, i) for i, t in enumerate(turns)])
        return self._encode(self.template.render(normalised, system))

    def decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode([int(i) for i in ids if i >= 0], skip_special_tokens=True)

    def _encode(self, pieces) -> tuple[torch.Tensor, torch.Tensor]:
        ids, labels = [], []
        for piece in pieces:
            piece_ids = self._tokenize_with_placeholder(piece.text)
            ids += piece_ids
            labels += piece_ids if piece.trained else [IGNORE_INDEX] * len(piece_ids)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)

    def _tokenize_with_placeholder(self, text: str) -> list[int]:
        ids = []
        for index, part in enumerate(text.split(IMAGE)):
            if index:
                ids.append(self.config.image_token_index)
            if part:
                ids += self.tokenizer(part, add_special_tokens=False).input_ids
        return ids

    # ------------------------------------------------------------ router side

    def queries(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Router queries -> ids (B, L), mask (B, L) long, right padded."""
        rows = [self._query_ids(_strip_placeholders(text)) for text in texts]
        longest = max(len(r) for r in rows)
        pad = self.text_tokenizer.pad_token_id if self.text_tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, : len(row)] = 1
        return ids, mask

    def _query_ids(self, text: str) -> list[int]:
        """Token ids ending with the end token, at most max_text_pe - 1 long (the router adds 1)."""
        limit = self.config.max_text_pe - 1
        ids = self.text_tokenizer(text, add_special_tokens=True).input_ids[:limit]
        end = self.text_tokenizer.eos_token_id
        if end is not None and (not ids or ids[-1] != end):
            ids = ids[: limit - 1] + [end]
        if not ids:
            raise RecordError(f"query {text!r} has no tokens")
        return ids

    # ------------------------------------------------------------ saving

    def save_pretrained(self, directory: str | Path) -> None:
        """Tokenizers into `tokenizer/` and `text_tokenizer/` of a checkpoint directory."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        self.text_tokenizer.save_pretrained(directory / TEXT_TOKENIZER_DIR)

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: SalovaConfig | None = None) -> SalovaProcessor:
        directory = Path(directory)
        for sub in (TOKENIZER_DIR, TEXT_TOKENIZER_DIR):
            if not (directory / sub).is_dir():
                raise CheckpointError(f"{directory / sub}: missing; save the processor with save_pretrained")
        config = config if config is not None else SalovaConfig.from_pretrained(directory)
        return cls(AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR),
                   AutoTokenizer.from_pretrained(directory / TEXT_TOKENIZER_DIR), config)


def _turn(turn, index: int) -> tuple[str, str]:
    if isinstance(turn, dict):
        role, text = turn.get("from", turn.get("role")), turn.get("value", turn.get("content"))
    else:
        role, text = turn
    if role not in ROLES or not isinstance(text, str):
        raise RecordError(f"conversations[{index}]: expected a human/gpt (user/assistant) turn with text, got {turn!r}")
    return ROLES[role], text.replace("<video>", IMAGE)


def _with_placeholder(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Exactly one <image> in the conversation; none -> in front of the first user turn."""
    count = sum(text.count(IMAGE) for _, text in turns)
    if count > 1:
        raise RecordError(f"conversations: {count} <image> placeholders; one video per sample is supported")
    if count == 1:
        return turns
    first_user = next((i for i, (role, _) in enumerate(turns) if role == "user"), None)
    if first_user is None:
        raise RecordError("conversations: no user turn to hold the <image> placeholder")
    role, text = turns[first_user]
    return [*turns[:first_user], (role, f"{IMAGE}\n{text}"), *turns[first_user + 1:]]


def _strip_placeholders(text: str) -> str:
    return text.replace(f"{IMAGE}\n", "").replace("<video>\n", "").replace(IMAGE, "").replace("<video>", "").strip()
