"""Pre-training of the testbed's model (:mod:`sec.testbed`): data by step, the learning-rate schedule,
and one pass that builds several points of the difficulty dial.

* **Data**: the problems of step ``t`` are a pure function of ``(seed, t)``: a NumPy generator seeded
  with ``[seed, t]`` draws each row's level by ``pretrain.mix`` and a random index into a
  reasoning-gym ``basic_arithmetic`` dataset of that level, seeded for pre-training
  (:func:`sec.tasks.generation.derive_seed` with split ``pretrain``, never the train/test seeds); an
  item whose bare prompt is an excluded test problem is redrawn. Rows are ``prompt + answer + EOS``,
  right-padded, loss on the answer and EOS only (labels -100 elsewhere).
* **Schedule** (warmup-stable-decay): linear warm-up to ``learning_rate`` over ``warmup_steps``,
  constant, then a cosine decay to 0 over the last ``decay_steps`` (a step's rate depends on the
  total only within the decay).
* **Several totals in one pass**: builds with ``steps`` N1 < N2 < ... share everything up to
  ``N_i - decay_steps``, so :func:`pretrain_many` runs the constant phase once and branches a copy of
  the model and optimizer into each decay: each result equals a build of that total alone (tested),
  at ``max(N) + (k - 1) * decay_steps`` steps instead of ``sum(N)``.

AdamW (betas 0.9 / 0.99, ``weight_decay``), gradient norm clipped at 1.0, ``pretrain.num_threads``
torch threads.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger("sec.testbed")


class PretrainData:
    """The pre-training problems of every step (module docstring).

    Args:
        task: the task config (``name``, ``levels`` keyed by int).
        mix: level -> share (sums to 1).
        seed: ``pretrain.seed``.
        exclude: bare prompts never drawn (the test problems).
        tok: the testbed tokenizer.
        batch_size: problems per step.
    """

    def __init__(
        self, task: Mapping[str, Any], mix: Mapping[int, float], seed: int, exclude: set[str], tok: Any, batch_size: int
    ) -> None:
        import reasoning_gym

        from sec.tasks.generation import derive_seed

        self.levels = [int(lv) for lv in mix]
        self.probs = np.array([float(mix[lv]) for lv in mix])
        self.seed, self.exclude, self.tok, self.batch_size = int(seed), exclude, tok, int(batch_size)
        self.datasets = {
            lv: reasoning_gym.create_dataset(
                "basic_arithmetic", seed=derive_seed(self.seed, str(task["name"]), lv, "pretrain"), size=2**31 - 1,
                **task["levels"][lv],
            )
            for lv in self.levels
        }  # fmt: skip

    def problems(self, step: int) -> list[tuple[int, str, str]]:
        """``(level, bare prompt, answer)`` of the ``batch_size`` problems of ``step``."""
        from sec.tasks.arith_bare import bare_arith_prompt

        rng = np.random.default_rng([self.seed, int(step)])
        out = []
        for lv in rng.choice(self.levels, size=self.batch_size, p=self.probs):
            while True:
                item = self.datasets[int(lv)][int(rng.integers(2**31 - 1))]
                prompt = bare_arith_prompt(item)
                if prompt not in self.exclude:
                    break
            out.append((int(lv), prompt, str(item["answer"])))
        return out

    def batch(self, step: int) -> tuple[Any, Any, Any]:
        """``(input_ids, attention_mask, labels)`` of ``step``, each of shape (batch_size, width)."""
        import torch

        eos, pad = self.tok.eos_token_id, self.tok.pad_token_id
        rows = []
        for _, prompt, answer in self.problems(step):
            p = self.tok(prompt, add_special_tokens=False)["input_ids"]
            a = self.tok(answer, add_special_tokens=False)["input_ids"] + [eos]
            rows.append((p + a, [-100] * len(p) + a))
        width = max(len(x) for x, _ in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        return ids, mask, labels


def lr_at(step: int, total: int, warmup: int, decay: int, peak: float) -> float:
    """Warmup-stable-decay: ``peak * (step + 1) / warmup`` during the warm-up, ``peak`` until
    ``total - decay``, then ``peak * (1 + cos(pi * k / decay)) / 2`` at the k-th step of the decay
    (the cosine of ``transformers.get_cosine_schedule_with_warmup`` over the last ``decay`` steps)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    k = step - (total - decay)
    if k < 0:
        return peak
    return peak * 0.5 * (1.0 + math.cos(math.pi * k / decay))


def _train_steps(
    model: Any, opt: Any, data: PretrainData, steps: range, lr: Any, losses: list, log_every: int, t0: float
) -> None:
    """Optimizer steps ``steps`` (learning rate ``lr(step)``); appends ``[step, mean loss]`` to
    ``losses`` every ``log_every`` steps and at the end of ``steps``."""
    import torch

    window: list[float] = []
    for step in steps:
        for group in opt.param_groups:
            group["lr"] = lr(step)
        ids, mask, labels = data.batch(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window.append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step + 1 == steps.stop:
            losses.append([step + 1, float(np.mean(window))])
            log.info("pretrain step %d loss %.4f (%.0fs)", step + 1, losses[-1][1], time.perf_counter() - t0)
            window = []


def pretrain_many(
    model: Any, data: PretrainData, totals: Sequence[int], p: Mapping[str, Any], *, log_every: int = 100
) -> dict[int, tuple[Any, list[list[float]], float]]:
    """Train ``model`` (fresh) to each total of ``totals`` in one pass (module docstring).

    Args:
        p: the ``pretrain`` settings (``learning_rate``, ``weight_decay``, ``warmup_steps``,
            ``decay_steps``, ``num_threads``).

    Returns:
        total -> ``(model, loss curve [[step, mean loss], ...], seconds)``; seconds of the pass up to
        that result.

    Raises:
        ValueError: a total shorter than ``warmup_steps + decay_steps``.
    """
    import torch

    warmup, decay, peak = int(p["warmup_steps"]), int(p["decay_steps"]), float(p["learning_rate"])
    totals = sorted({int(n) for n in totals})
    if totals[0] < warmup + decay:
        raise ValueError(
            f"model.pretrain.steps={totals[0]} is shorter than warmup_steps + decay_steps ({warmup + decay})"
        )
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.99), weight_decay=float(p["weight_decay"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(int(p["num_threads"]))
    t0 = time.perf_counter()
    out: dict[int, tuple[Any, list[list[float]], float]] = {}
    losses: list[list[float]] = []
    done = 0
    model.train()
    try:
        for total in totals:
            stable_end = total - decay

            def lr(step: int, total: int = total) -> float:
                return lr_at(step, total, warmup, decay, peak)

            _train_steps(model, opt, data, range(done, stable_end), lr, losses, log_every, t0)
            done = stable_end
            # one deepcopy of both: the copied optimizer refers to (and keys its state by) the copied parameters
            branch, branch_opt = copy.deepcopy((model, opt))
            curve = list(losses)
            _train_steps(branch, branch_opt, data, range(stable_end, total), lr, curve, log_every, t0)
            branch.eval()
            out[total] = (branch, curve, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return out
