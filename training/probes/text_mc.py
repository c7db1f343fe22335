"""Text-only option matching: can the `small` LLM learn to answer a multiple-choice question whose
answer is spelled out in the prompt, with the option's letter? No video and no router at all.

    python -m training.probes.text_mc [--checkpoint CKPT] [--steps 1000] [--batch 32]
        [--vocabulary palette|initials] [--options 4] [--lr 1e-3] [--every 250]

Each example is one chat turn in the `small` model's template,
"The background is red. What color is the background?" followed by --options lettered options
(the answer and other colours, shuffled; default four) and the benchmark instruction; the loss is the
cross-entropy (over the whole byte vocabulary) of the correct letter at the assistant's first
position; accuracy is the arg-max among the option letters. Every --every steps it prints
the accuracy on 256 held-out examples (a fixed seed; chance 1 / options). The LLM starts random
(default) or from a checkpoint's LLM. `initials` restricts the colours to nine with distinct
first letters. AdamW (learning rate --lr), gradient clipping 1.0, one thread, seed 0.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from salova.config import SalovaConfig
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor

PALETTE = ("black", "white", "gray", "red", "orange", "yellow", "green", "cyan", "blue", "magenta", "purple", "brown")
INITIALS = ("red", "orange", "yellow", "green", "cyan", "blue", "magenta", "purple", "white")
LETTERS = "ABCD"
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def example(rng: np.random.Generator, vocabulary: tuple[str, ...], count: int, statement: str = "colour") -> tuple[str, int]:
    """One prompt in the qwen2.5 chat layout with `count` options and the index of its correct option.
    statement "colour": "The background is red." (match the colour to an option); "letter": "The
    answer is C." (copy a letter: a control that needs no matching)."""
    answer = str(rng.choice(vocabulary))
    others = rng.choice([v for v in vocabulary if v != answer], count - 1, replace=False)
    options = [answer, *(str(v) for v in others)]
    rng.shuffle(options)
    index = options.index(answer)
    lines = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options))
    told = f"The background is {answer}." if statement == "colour" else f"The answer is {LETTERS[index]}."
    prompt = (f"<|im_start|>user\n{told} What color is the background?\n{lines}\n{INSTRUCTION}"
              "<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
    return prompt, index


def batch(tokenizer, rng: np.random.Generator, size: int, vocabulary, count: int,
          statement: str = "colour") -> tuple[torch.Tensor, ...]:
    """Left-padded ids and mask (the answer position is the last one) and the correct option indices."""
    items = [example(rng, vocabulary, count, statement) for _ in range(size)]
    ids = [tokenizer(prompt, add_special_tokens=False).input_ids for prompt, _ in items]
    width = max(len(row) for row in ids)
    padded = torch.tensor([[0] * (width - len(row)) + row for row in ids])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
    return padded, mask, torch.tensor([answer for _, answer in items])


def next_logits(llm, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, vocabulary)
    return llm(input_ids=ids, attention_mask=mask).logits[:, -1]


def held_out_accuracy(llm, tokenizer, letter_ids: list[int], vocabulary, statement: str = "colour") -> float:
    ids, mask, answers = batch(tokenizer, np.random.default_rng(123), 256, vocabulary, len(letter_ids), statement)
    llm.eval()
    with torch.no_grad():
        predicted = next_logits(llm, ids, mask)[:, letter_ids].argmax(dim=1)
    llm.train()
    return float((predicted == answers).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.probes.text_mc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a save_pretrained folder (default: a fresh `small` model)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocabulary", choices=("palette", "initials"), default="palette")
    parser.add_argument("--options", type=int, choices=(2, 3, 4), default=4, help="options per question")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--every", type=int, default=250, help="evaluate every N steps")
    parser.add_argument("--statement", choices=("colour", "letter"), default="colour",
                        help="what the prompt states: the colour (a matching task) or the letter (a copy control)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = (SalovaForCausalLM.from_pretrained(args.checkpoint) if args.checkpoint
             else SalovaForCausalLM(SalovaConfig.from_preset("small")))  # fmt: skip
    tokenizer = SalovaProcessor.for_config(model.config).tokenizer
    vocabulary = INITIALS if args.vocabulary == "initials" else PALETTE
    letter_ids = [tokenizer(letter, add_special_tokens=False).input_ids[0] for letter in LETTERS[: args.options]]
    llm = model.llm.train()
    optimizer = torch.optim.AdamW(llm.parameters(), lr=args.lr)
    rng, started = np.random.default_rng(0), time.time()
    print(f"step 0 held-out accuracy {held_out_accuracy(llm, tokenizer, letter_ids, vocabulary, args.statement):.3f}", flush=True)
    for step in range(1, args.steps + 1):
        ids, mask, answers = batch(tokenizer, rng, args.batch, vocabulary, args.options, args.statement)
        loss = F.cross_entropy(next_logits(llm, ids, mask), torch.tensor(letter_ids)[answers])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0:
            accuracy = held_out_accuracy(llm, tokenizer, letter_ids, vocabulary, args.statement)
            print(f"step {step} loss {loss.item():.3f} ({time.time() - started:.0f} s) held-out accuracy {accuracy:.3f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
