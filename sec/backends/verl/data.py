"""The run's problems as verl datasets: the training and validation parquet files and the spec
the dataset inside verl's trainer (:class:`sec.backends.verl_ext.SECDataset`) reads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from sec.backends.verl.paths import VerlPaths
from sec.evaluate import eval_group, model_prompt

if TYPE_CHECKING:
    from sec.workspace import Workspace


def verl_rows(
    records: Sequence[Mapping[str, Any]],
    prompt_format: str,
    format_rewards: Mapping[str, float],
    extractions: Mapping[str, str],
) -> Any:
    """Problem records (:mod:`sec.tasks.data`) as verl dataset rows, in the same order.

    Columns: ``data_source`` (``<task>/<group>``, the group being ``level_<k>`` or a named eval set
    such as ``math500`` (:func:`sec.evaluate.eval_group`): verl groups its validation metrics by it),
    ``prompt`` (one user turn: the question for ``chat``, the TinyZero prompt for ``plain``),
    ``reward_model.ground_truth`` (the answer JSON), ``extra_info`` (``index`` = position,
    ``task``, ``level``, ``split``, ``format_reward``, ``answer_extraction`` (per task, from
    ``format_rewards`` / ``extractions``: the task configs)) and the record's own ``task``/``level``.

    Returns:
        a pandas DataFrame.
    """
    import pandas as pd

    rows = []
    for i, r in enumerate(records):
        p = model_prompt(r, prompt_format)
        content = p if isinstance(p, str) else p[-1]["content"]
        task, level = str(r["task"]), int(r["level"])
        rows.append(
            {
                "data_source": f"{task}/{eval_group(r)}",
                "prompt": [{"role": "user", "content": content}],
                "ability": "puzzle",
                "reward_model": {"style": "rule", "ground_truth": str(r["answer"])},
                "extra_info": {
                    "index": i,
                    "id": str(r.get("id", i)),
                    "task": task,
                    "level": level,
                    "split": str(r.get("split", "")),
                    "format_reward": float(format_rewards[task]),
                    "answer_extraction": str(extractions[task]),
                },
                "task": task,
                "level": level,
            }
        )
    return pd.DataFrame(rows)


def val_records(ws: Workspace) -> list[dict[str, Any]]:
    """The test problems verl validates on: per task and level (or named eval set), the first
    ``eval.max_problems_per_level`` (all when null), as :func:`sec.evaluate.evaluate` picks."""
    limit = ws.cfg.eval.max_problems_per_level
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for r in ws.test_records:
        key = (str(r["task"]), eval_group(r))
        if limit and seen.get(key, 0) >= int(limit):
            continue
        seen[key] = seen.get(key, 0) + 1
        out.append(r)
    return out


def write_run_files(ws: Workspace, paths: VerlPaths) -> dict[str, Any]:
    """Write the train / validation parquet and the spec the dataset reads; returns the spec."""
    from sec.workspace import task_components

    paths.root.mkdir(parents=True, exist_ok=True)
    fmt = str(ws.cfg.model.prompt_format)
    rewards = {str(c["name"]): float(c["format_reward"]) for c in task_components(ws.cfg.task)}
    extractions = {str(c["name"]): str(c["answer_extraction"]) for c in task_components(ws.cfg.task)}
    verl_rows(ws.train_records, fmt, rewards, extractions).to_parquet(paths.train_file)
    verl_rows(val_records(ws), fmt, rewards, extractions).to_parquet(paths.val_file)
    spec = {
        "train_file": str(paths.train_file),
        "curriculum": OmegaConf.to_container(ws.cfg.curriculum, resolve=True),
        "total_steps": int(ws.cfg.train.steps),
        "batch_size": int(ws.cfg.train.prompts_per_step),
        "seed": int(ws.cfg.seed),
        "checkpoint_dir": str(paths.checkpoints),
        "curriculum_log": str(paths.curriculum_log),
        "save_request": str(paths.save_request),
        "save_every": int(ws.cfg.train.save_every),
    }
    paths.spec.write_text(json.dumps(spec, indent=2))
    return spec
