"""salova.likelihood: answers scored by the LLM's log-likelihood, and VideoIndex.choose."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.likelihood import answer_loglikelihoods
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.processing import SalovaProcessor

QUESTION = "What is the background color of the scene with a red object?"


def tiny_model():
    config = SalovaConfig.from_preset("tiny")
    torch.manual_seed(0)
    return SalovaForCausalLM(config).eval(), SalovaProcessor.for_config(config)


def random_video(config, scenes: int = 4, seed: int = 1) -> SceneFeatures:
    generator = torch.Generator().manual_seed(seed)
    return SceneFeatures(torch.randn(scenes, 64, generator=generator),
                         torch.randn(scenes, config.connector_latents, 64, generator=generator))


def training_loss_score(model, processor, video, focus, question: str, answer: str) -> torch.Tensor:
    """Minus the summed cross-entropy of `answer`, from the model's training forward (labels on the answer)."""
    prompt = processor.prompt(question)
    answer_ids = torch.tensor(processor.tokenizer(answer, add_special_tokens=False).input_ids)
    ids = torch.cat([prompt, answer_ids])[None]
    labels = torch.cat([torch.full_like(prompt, -100), answer_ids])[None]
    with torch.no_grad():
        out = model(ids, labels=labels, videos=[video], focus=[focus],
                    query_ids=[torch.zeros(1, 2, dtype=torch.long)], query_mask=[torch.ones(1, 2, dtype=torch.long)],
                    router_labels=[torch.zeros(1, video.num_scenes)])
    return -out.lm_loss * len(answer_ids)


def test_scores_are_the_llm_log_likelihood_of_each_answer():
    model, processor = tiny_model()
    video = random_video(model.config)
    focus = torch.tensor([2, 0])
    answers = ["Red.", "Blue.", "The shape moves left across the screen."]
    scores = answer_loglikelihoods(model, processor, video, focus, QUESTION, answers)
    assert scores.shape == (3,) and scores.dtype == torch.float32
    for answer, score in zip(answers, scores):
        torch.testing.assert_close(score, training_loss_score(model, processor, video, focus, QUESTION, answer),
                                   atol=1e-4, rtol=1e-4)
    assert len(set(scores.tolist())) == 3  # the answers are told apart


@settings(max_examples=10, deadline=None)
@given(order=st.permutations(range(4)))
def test_a_score_does_not_depend_on_the_other_answers_or_their_order(order):
    model, processor = tiny_model()
    video = random_video(model.config)
    answers = ["Red.", "Green.", "Black.", "White."]
    alone = torch.stack([answer_loglikelihoods(model, processor, video, torch.tensor([1]), QUESTION, [a])[0]
                         for a in answers])
    shuffled = answer_loglikelihoods(model, processor, video, torch.tensor([1]), QUESTION, [answers[i] for i in order])
    assert torch.equal(shuffled, alone[list(order)])


def test_the_focus_changes_the_scores():
    model, processor = tiny_model()
    video = random_video(model.config)
    first = answer_loglikelihoods(model, processor, video, torch.tensor([0]), QUESTION, ["Red.", "Blue."])
    other = answer_loglikelihoods(model, processor, video, torch.tensor([3]), QUESTION, ["Red.", "Blue."])
    assert not torch.allclose(first, other)
