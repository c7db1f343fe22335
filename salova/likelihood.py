"""How likely the model finds each of several given answers to a question about a video.

Multiple-choice questions can be answered by generating an option letter or, as language-model
harnesses do for cloze-style tasks, by scoring each option's text as the whole reply and taking
the most likely one. The second needs no skill at matching an option to its letter, so it measures
what the model sees apart from that skill (docs/results.md explains why the `small` model needs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from salova.modeling.focusfast import splice
from salova.modeling.salova import SceneFeatures


@torch.no_grad()
def answer_loglikelihoods(model, processor, features: SceneFeatures, focus: torch.Tensor, question: str,
                          answers: Sequence[str]) -> torch.Tensor:  # fmt: skip
    """Sum of the log-probabilities of each answer's tokens as the assistant's reply to `question`,
    with the Focus scenes `focus` (K,) and the video's Fast tokens -> (len(answers),) float32.
    Each answer is scored in its own forward pass, so a score never depends on the other answers."""
    features = model._on_model(features)
    block = model.visual_block(features, focus.sort().values.to(model.device))
    prompt_ids = processor.prompt(question).to(model.device)
    scores = []
    for answer in answers:
        answer_ids = torch.tensor(processor.tokenizer(answer, add_special_tokens=False).input_ids, device=model.device)
        ids = torch.cat([prompt_ids, answer_ids])
        embeds, _ = splice(model._embed_text(ids), ids, None, block, model.config.image_token_index)
        logits = model.llm(inputs_embeds=embeds[None]).logits[0, -len(answer_ids) - 1 : -1].float()  # predict the answer
        scores.append(logits.log_softmax(-1).gather(1, answer_ids[:, None]).sum())
    return torch.stack(scores)
