"""SALOVA as an lmms-eval 0.7.3 "simple" model (`--model salova`).

Each request is answered through `salova.index.VideoIndex`: the video's scene
features are computed once and cached on disk, the router scores the scenes
against the question text of the record (not the prompt boilerplate), the top-K
scenes go to the LLM, and decoding is greedy unless the task asks otherwise.

Every answer is appended to a `SampleLog` (samples.jsonl) as soon as it exists,
and an answer already in the log under the same settings is returned without
running the model: that is what makes an interrupted run resumable. A video
that is missing or cannot be decoded gives an empty answer and a failure
record (scored wrong, listed in the report) instead of stopping the run,
unless `strict` is set.

model_args: pretrained=CKPT (local folder; default: the built-in demo
checkpoint), k, max_new_tokens (overrides the task's), cache_dir (feature
cache), device, samples (path of a samples.jsonl to resume from and append to),
strict, answer_by ("generate", the default: the reply is generated and the task parses it;
"likelihood": each option's text is scored as the whole reply and the most likely option's letter
is the answer, evals/options.py). Python callers that already hold a VideoIndex pass `index` and
`checkpoint_hash` instead of `pretrained`. Other keys lmms-eval passes
(max_batch_size, ...) are accepted and ignored: samples are answered one at a
time, so an answer never depends on what else is in a batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from lmms_eval.api.model import lmms
from tqdm import tqdm

from evals import cache_root
from evals.options import ANSWER_BY, cloze, named_options, record_options
from evals.provenance import folder_digest
from evals.sample_log import SampleLog, sample_key, settings_hash
from salova.data.records import router_query_text
from salova.errors import CheckpointError, ConfigError, RecordError, SalovaError, VideoError


def router_query(doc: dict) -> str:
    """The question the router scores scenes against: the record's question without its options
    (the rule stage-2 training uses too: salova.data.records.router_query_text)."""
    return router_query_text(str(doc["question"]))


def decoding_settings(gen_kwargs: dict, max_new_tokens: int | None) -> dict:
    """HF generate kwargs from a task's generation_kwargs: greedy unless sampling is asked for."""
    gen = {k: v for k, v in gen_kwargs.items() if k != "until"}
    settings = {"max_new_tokens": int(max_new_tokens or gen.get("max_new_tokens", 64))}
    temperature = float(gen.get("temperature") or 0.0)
    if gen.get("do_sample") or temperature > 0:
        settings.update(do_sample=True, temperature=temperature or 1.0, top_p=float(gen.get("top_p", 1.0)))
    else:
        settings["do_sample"] = False
    if int(gen.get("num_beams", 1)) > 1:
        settings["num_beams"] = int(gen["num_beams"])
    return settings


def pick_device(device: str | None) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device in (None, "", "cuda") and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    if device and device.startswith("cuda") and torch.cuda.is_available():
        return torch.device(device)
    return torch.device("cpu")


class SalovaLMMS(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        k: int | None = None,
        max_new_tokens: int | None = None,
        cache_dir: str | None = None,
        device: str | None = None,
        samples: str | None = None,
        strict: bool = False,
        batch_size: int | str = 1,
        index=None,
        checkpoint_hash: str | None = None,
        answer_by: str = "generate",
        **ignored,
    ):
        super().__init__()
        self._device = pick_device(device)
        if dist.is_available() and dist.is_initialized():
            self._rank, self._world_size = dist.get_rank(), dist.get_world_size()
        self.batch_size_per_gpu = int(batch_size)
        self.strict = bool(strict)
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        if answer_by not in ANSWER_BY:
            raise ConfigError(f"answer_by={answer_by!r} is not one of {', '.join(ANSWER_BY)}")
        self.answer_by = answer_by
        if index is None:
            index, checkpoint_hash = self._build_index(pretrained, cache_dir)
        self.index = index
        self.checkpoint_hash = checkpoint_hash
        self.k = int(k or index.model.config.focus_k)
        self.fingerprint = settings_hash(checkpoint_hash, self.k, str(index.sampler), answer_by)
        self.log = SampleLog(samples) if isinstance(samples, (str, Path)) else samples
        self.model_calls = 0

    def _build_index(self, pretrained: str | None, cache_dir: str | None):
        from salova.index import VideoIndex

        if pretrained is None:
            from evals.demo_checkpoint import demo_checkpoint

            folder = demo_checkpoint()
        else:
            folder = Path(pretrained).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint {folder} does not exist; pass a save_pretrained folder")
        from salova.checkpoint import load_checkpoint

        model, processor = load_checkpoint(folder, self._device)
        index = VideoIndex(model, processor, cache_dir or cache_root() / "features")
        return index, folder_digest(folder)

    @property
    def device(self) -> torch.device:
        return self._device

    def generate_until(self, requests) -> list[str]:
        answers = []
        for request in tqdm(requests, desc="Answering", disable=self.rank != 0):
            contexts, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            answers.append(self.answer(task, doc_id, doc, contexts, gen_kwargs, doc_to_visual(doc)[0]))
        return answers

    def key(self, task: str, doc_id: int, doc: dict, prompt: str, gen_kwargs: dict) -> str:
        """samples.jsonl key of one request: the record, the prompt and every setting that changes the answer."""
        decoding = decoding_settings(gen_kwargs, self.max_new_tokens)
        return sample_key(task, doc_id, settings_hash(self.fingerprint, dict(doc), prompt, decoding))

    def answer(self, task: str, doc_id: int, doc: dict, prompt: str, gen_kwargs: dict, video: str) -> str:
        decoding = decoding_settings(gen_kwargs, self.max_new_tokens)
        key = self.key(task, doc_id, doc, prompt, gen_kwargs)
        if self.log is not None and (done := self.log.lookup(key)) is not None:
            return done["answer"]
        record = {"key": key, "task": task, "doc_id": doc_id, "video": video, "rank": self.rank}
        started = time.perf_counter()
        try:
            self.model_calls += 1
            if self.answer_by == "likelihood":
                reply = self.choose(task, doc, video)
            else:
                reply = self.index.ask(video, prompt, query=router_query(doc), k=self.k, **decoding)
        except (VideoError, RecordError, OSError) as error:
            if self.strict:  # a malformed record stays a RecordError; an unreadable file is a VideoError
                raise (type(error) if isinstance(error, SalovaError) else VideoError)(
                    f"{task} doc {doc_id}: {error} (--strict stops at the first failed sample)"
                ) from error
            record.update(answer="", failure=f"{type(error).__name__}: {error}")
        else:
            record.update(
                answer=reply.text,
                focus=reply.focus,
                focus_times=reply.scene_times,
                top1=max(range(len(reply.scores)), key=reply.scores.__getitem__) if reply.scores else None,
                num_scenes=len(reply.scores),
                features_from_cache=reply.from_cache,
            )
            if self.answer_by == "likelihood":
                record.update(option_scores=reply.option_scores, named_options=reply.named_options)
        record["seconds"] = round(time.perf_counter() - started, 4)
        if self.log is not None:
            self.log.append(record)
        return record["answer"]

    def choose(self, task: str, doc: dict, video: str):
        """The letter of the most likely option (evals/options.py) as the reply, with its scores."""
        options = record_options(task, doc)
        scored = [i for i, option in enumerate(options) if option is not None]
        question = router_query(doc)
        choice = self.index.choose(video, question, [cloze(options[i]) for i in scored], query=question, k=self.k)
        return SimpleNamespace(text=chr(65 + scored[choice.best]), focus=choice.focus, scene_times=choice.scene_times,
                               scores=choice.scores, from_cache=choice.from_cache,
                               option_scores={chr(65 + i): s for i, s in zip(scored, choice.answer_scores)},
                               named_options=named_options(question, options))  # fmt: skip

    def loglikelihood(self, requests):
        raise NotImplementedError("SALOVA is evaluated on generation tasks only")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("SALOVA is evaluated on single-turn generation tasks only")
