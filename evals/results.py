"""Assemble one run's results: per-sample rows, scores and every knob that changes a score.

The rows join lmms-eval's logged samples (the record, the prompt, lmms-eval's own
parsed prediction) with our samples.jsonl records (answer, failure, Focus scenes),
through the same key the model used when it answered.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from evals.diagnostics import letterless_replies, router_recall
from evals.lmms_model import decoding_settings
from evals.provenance import file_digest, folder_digest, git_state, package_versions
from evals.sample_log import read_records
from evals.scoring import FAMILIES, sample_row, score_task

REPO = Path(__file__).resolve().parent.parent
TASKS_DIR = REPO / "evals" / "tasks"


def task_rows(
    task: str, benchmark: str, logged_samples: list[dict], model, on_file: dict[str, dict]
) -> list[dict]:
    """One row per question of `task`: our record of the answer joined with lmms-eval's scoring of it."""
    family = FAMILIES[benchmark]
    rows = []
    for logged in sorted(logged_samples, key=lambda s: s["doc_id"]):
        prompt, gen_kwargs = logged["arguments"][0], logged["arguments"][1]
        key = model.key(task, logged["doc_id"], logged["doc"], prompt, gen_kwargs)
        record = on_file.get(key) or {"key": key, "failure": "no answer on file"}
        doc = logged["doc"]
        span = (doc["answer_start_s"], doc["answer_end_s"]) if doc.get("answer_start_s") is not None else None
        row = {
            **record,
            "task": task,
            "doc_id": logged["doc_id"],
            "answer": logged["filtered_resps"][0],
            "failure": record.get("failure"),
            "answer_span": span,
        }
        row.update(sample_row(family, logged, row["failure"]))
        rows.append(row)
    return rows


def lmms_eval_headline(task_results: dict) -> dict:
    """lmms-eval's own aggregate for the task, verbatim (its scale: % for Video-MME/MLVU, fraction for LVB)."""
    return {
        k.split(",")[0]: v
        for k, v in task_results.items()
        if k != "alias" and "stderr" not in k and isinstance(v, (int, float))
    }


def collect(*, results, model, plans, checkpoint, data_root, demo, args, model_calls, seconds) -> dict:
    """model_calls: how many samples each process answered with the model (not from samples.jsonl)."""
    on_file = {r["key"]: r for r in read_records(model.log.path)}  # the latest record of each key
    tasks, rows = {}, []
    for plan in plans:
        logged = results["samples"].get(plan.name, [])
        this_task = task_rows(plan.name, plan.benchmark, logged, model, on_file)
        scores = score_task(FAMILIES[plan.benchmark], this_task)
        scores["benchmark"] = plan.benchmark
        scores["lmms_eval"] = lmms_eval_headline(results["results"].get(plan.name, {}))
        scores["router"] = router_recall(this_task)
        if model.answer_by == "generate":
            scores["replies"] = letterless_replies(this_task)
        scores["failures"] = [
            {"doc_id": r["doc_id"], "video": r.get("video"), "failure": r["failure"]}
            for r in this_task
            if r["failure"]
        ]
        tasks[plan.name] = scores
        rows.extend(this_task)
    return {
        "tasks": tasks,
        "rows": rows,
        "totals": {
            "samples": len(rows),
            "failed": sum(1 for r in rows if r["failure"]),
            "model_calls": sum(model_calls),
            "model_calls_per_process": model_calls,
            "seconds": round(seconds, 2),
            "world_size": len(model_calls),
        },
        "settings": settings(results, model, plans, checkpoint, data_root, demo, args),
    }


def settings(results, model, plans, checkpoint, data_root, demo, args) -> dict:
    """Every knob that changes a score."""
    config = model.index.model.config
    configs = results.get("configs", {})
    return {
        "checkpoint": {"path": str(checkpoint), "hash": model.checkpoint_hash, "demo": demo["checkpoint"]},
        "k": model.k,
        "answer_by": model.answer_by,
        "towers": {"family": config.tower_family, "vision": config.vision_tower, "llm": config.llm},
        "template": config.chat_template,
        "sampler": dataclasses.asdict(model.index.sampler),
        "decoding": {
            plan.name: decoding_settings(
                configs.get(plan.name, {}).get("generation_kwargs", {}), model.max_new_tokens
            )
            for plan in plans
        },
        "prompts": {plan.name: configs.get(plan.name, {}).get("lmms_eval_specific_kwargs") for plan in plans},
        "data": {
            "root": str(data_root),
            "demo": demo["data"],
            "tasks": {
                plan.name: {
                    "question_file": str(plan.question_file),
                    "question_file_hash": file_digest(plan.question_file),
                    "videos": str(plan.videos),
                }
                for plan in plans
            },
        },
        "limit": args.get("limit"),
        "strict": args.get("strict"),
        "device": str(model.device),
        "task_versions": {plan.name: results.get("versions", {}).get(plan.name) for plan in plans},
        "task_definitions_hash": folder_digest(TASKS_DIR),  # our YAMLs and utils.py
        "model_config": config.to_dict(),
        "packages": package_versions(),
        "git": git_state(REPO),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
