"""Evaluation: pass@1 over k samples per problem, per test level (or named eval set) and for the
ID / OOD splits.

pass@1 (SEC.md §3) is the mean correctness over ``k`` independent samples per problem at
temperature 1.0 (paper: k = 8), averaged over the problems of a split. For the puzzles, ID pools
the test problems of the training levels and OOD those of the held-out levels. A task evaluated on
named sets (Math: ``math500``, ``amc``, ``aime24``, the set in each record's ``metadata``) reports
one split per set, ID pooling its ``id_sets`` and OOD its ``ood_sets``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger("sec.evaluate")

PROMPT_FORMATS = ("chat", "plain")


def model_prompt(record: Mapping[str, Any], prompt_format: str) -> str | list[dict[str, str]]:
    """The model input of a problem record: the question as a user turn for ``chat`` (the
    tokenizer's chat template renders it), the TinyZero-rendered ``prompt`` for ``plain``
    (SEC.md §2, the released code's format).

    Raises:
        ValueError: for an unknown format.
    """
    if prompt_format == "chat":
        return [{"role": "user", "content": str(record["question"])}]
    if prompt_format == "plain":
        return str(record["prompt"])
    raise ValueError(f"model.prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")


def render_prompt(record: Mapping[str, Any], tokenizer: Any, prompt_format: str) -> str:
    """The exact text fed to the model, identical to what TRL renders for training."""
    p = model_prompt(record, prompt_format)
    if isinstance(p, str):
        return p
    return tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)


def plan_batches(
    n_tokens: Sequence[int],
    *,
    k: int,
    max_new_tokens: int,
    batch_size: int,
    max_batch_tokens: int | None,
    order: Sequence[int] | None = None,
) -> list[tuple[list[int], int]]:
    """Group prompts into ``generate`` calls: ``(prompt indices, samples per prompt)`` each.

    Prompts are taken in ``order`` (similar lengths share a call); a call holds at most
    ``max(1, batch_size // k)`` prompts with ``k`` samples each, and, when ``max_batch_tokens``
    is set, at most that many tokens: rows x (longest prompt of the call + ``max_new_tokens``),
    the padded length its KV cache and prefill activations grow with. A prompt whose ``k``
    samples alone exceed the budget is sampled in several calls of as many rows as fit (at
    least one). Without a binding budget the calls are ``batch_size // k`` consecutive prompts.

    Args:
        n_tokens: tokens of each prompt (as the model sees it).
        order: the order to take prompts in (default: as given).
    """
    per_call = max(1, batch_size // k)
    budget = float("inf") if max_batch_tokens is None else int(max_batch_tokens)
    calls: list[tuple[list[int], int]] = []
    group: list[int] = []
    longest = 0
    for i in order if order is not None else range(len(n_tokens)):
        length = max(longest, int(n_tokens[i]))
        if group and (len(group) == per_call or (len(group) + 1) * k * (length + max_new_tokens) > budget):
            calls.append((group, k))
            group, length = [], int(n_tokens[i])
        group.append(int(i))
        longest = length
    if group:
        calls.append((group, k))
    out: list[tuple[list[int], int]] = []
    for group, n in calls:
        row = int(n_tokens[group[0]]) + max_new_tokens
        if len(group) == 1 and n * row > budget:  # one prompt's k samples in several calls
            rows = max(1, int(budget // row))
            out.extend((group, min(rows, n - s)) for s in range(0, n, rows))
        else:
            out.append((group, n))
    return out


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    max_batch_tokens: int | None = None,
) -> list[list[str]]:
    """Sample ``k`` completions for each prompt (pure sampling: top-k and top-p off), in
    ``generate`` calls of at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens
    (:func:`plan_batches`; memory of a call grows with its tokens, docs/memory.md).

    Returns:
        list of length ``len(prompts)``, each a list of ``k`` decoded completions.
    """
    import torch

    order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths share a batch
    n_tokens = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    calls = plan_batches(
        n_tokens,
        k=k,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        order=order,
    )
    out: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for idx, n in calls:
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {key: v.to(model.device) for key, v in enc.items()}
            with torch.no_grad():
                seqs = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id,
                )
            texts = tokenizer.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for j, i in enumerate(idx):
                out[i].extend(texts[j * n : (j + 1) * n])
    finally:
        model.train(was_training)
    return out


def eval_group(record: Mapping[str, Any]) -> str:
    """The split a test record is reported under: its eval set (``metadata["eval_set"]``, Math) or
    ``level_<k>``."""
    meta = record.get("metadata")
    if isinstance(meta, str) and '"eval_set"' in meta:
        name = json.loads(meta).get("eval_set")
        if name:
            return str(name)
    return f"level_{int(record['level'])}"


def _group_order(group: str) -> tuple[int, int | str]:
    """Levels first, numerically, then named eval sets."""
    return (0, int(group[6:])) if group.startswith("level_") and group[6:].isdigit() else (1, group)


def pool_pass_at_1(
    groups: Mapping[str, tuple[float, int]], id_groups: Collection[str], ood_groups: Collection[str]
) -> list[dict[str, Any]]:
    """pass@1 per group (a test level ``level_<k>`` or a named eval set) and pooled into ID / OOD,
    weighting every problem equally (SEC.md §3: ID = the test problems of the training levels,
    OOD = those of the held-out levels; Math: ``task.id_sets`` / ``task.ood_sets``). Both backends
    report through it: TRL's :func:`evaluate` and verl's ``MetricsMerger``.

    Args:
        groups: group -> ``(total, n)``: the sum over the group's ``n`` problems of each problem's
            pass@1 (its mean correctness over k samples), and ``n`` > 0.
        id_groups, ood_groups: the groups pooled into ``id`` / ``ood``; groups absent from
            ``groups`` are ignored.

    Returns:
        ``{"split", "pass@1", "n_problems"}`` per group (levels first, numerically, then named
        sets), then ``id`` and ``ood`` when any of their groups is present; pass@1 in [0, 1] is
        the pool's total over its problem count (groups summed in name order).
    """
    out = [
        {"split": g, "pass@1": groups[g][0] / groups[g][1], "n_problems": groups[g][1]}
        for g in sorted(groups, key=_group_order)
    ]
    for split, members in (("id", id_groups), ("ood", ood_groups)):
        pooled = sorted(g for g in groups if g in set(members))
        n = sum(groups[g][1] for g in pooled)
        if pooled and n:
            out.append({"split": split, "pass@1": sum(groups[g][0] for g in pooled) / n, "n_problems": n})
    return out


def evaluate(
    model: Any,
    tokenizer: Any,
    test_records: Sequence[Mapping[str, Any]],
    *,
    score: Callable[[str, Mapping[str, Any]], float],
    train_levels: Sequence[int],
    ood_levels: Sequence[int],
    prompt_format: str,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    max_problems_per_level: int | None,
    max_batch_tokens: int | None = None,
    seed: int,
    step: int,
    id_sets: Sequence[str] = (),
    ood_sets: Sequence[str] = (),
    per_problem: dict[str, list[float]] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate on the test split of one task.

    Args:
        test_records: test problem records (``task``, ``level``, ``question``/``prompt``, ...).
        score: validation scorer ``(completion, record) -> 1.0 | 0.0``.
        max_problems_per_level: the first N test problems of each level or eval set (None = all).
        batch_size / max_batch_tokens: rows and padded tokens of one ``generate`` call
            (:func:`plan_batches`; None = no token bound).
        id_sets / ood_sets: for a task with named eval sets, the sets pooled into ``id`` / ``ood``
            (``train_levels`` / ``ood_levels`` are then unused).
        seed: sampling seed; the global torch RNG is restored afterwards, so evaluation never
            changes the training trajectory.
        per_problem: if given, filled with each record's per-problem pass@1 values (split ->
            list), e.g. for standard errors (benchmarks/level_pass_rates.py).

    Returns:
        eval records for ``metrics.jsonl``: one per level (``level_<k>``) or eval set (its name),
        ``id`` and ``ood``, each with ``pass@1`` in [0, 1], ``n_problems`` and ``k_samples``.
    """
    import torch

    t0 = time.perf_counter()
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for r in test_records:
        by_group.setdefault(eval_group(r), []).append(r)
    chosen = {g: rs[:max_problems_per_level] if max_problems_per_level else rs for g, rs in by_group.items()}
    flat = [(g, r) for g in sorted(chosen, key=_group_order) for r in chosen[g]]
    if not flat:
        return []
    prompts = [render_prompt(r, tokenizer, prompt_format) for _, r in flat]
    task = str(flat[0][1]["task"])
    # benchmarks/peak_memory.py reads this line as the start of the eval phase
    log.info("eval step %d (%s): %d prompts x %d samples", step, task, len(prompts), k)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        completions = generate(
            model,
            tokenizer,
            prompts,
            k=k,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
        )
    # per-problem pass@1 = mean over its k samples
    solved = np.array([np.mean([score(c, r) for c in cs]) for (_, r), cs in zip(flat, completions, strict=True)])
    groups = np.array([g for g, _ in flat])
    id_groups = [*id_sets, *(f"level_{lv}" for lv in train_levels)]
    ood_groups = [*ood_sets, *(f"level_{lv}" for lv in ood_levels)]
    totals = {g: (float(solved[groups == g].sum()), int((groups == g).sum())) for g in chosen if (groups == g).any()}
    records = [
        {"step": step, "kind": "eval", "task": task, **pooled, "k_samples": k}
        for pooled in pool_pass_at_1(totals, id_groups, ood_groups)
    ]
    if per_problem is not None:
        members = {"id": id_groups, "ood": ood_groups}
        for r in records:
            mask = np.isin(groups, members.get(r["split"], [r["split"]]))
            per_problem[r["split"]] = solved[mask].tolist()
    log.info(
        "eval step %d (%s): %s in %.1fs",
        step,
        task,
        ", ".join(f"{r['split']}={r['pass@1']:.3f}" for r in records if r["split"] in ("id", "ood")),
        time.perf_counter() - t0,
    )
    return records
