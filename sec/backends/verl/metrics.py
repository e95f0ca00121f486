"""verl's metrics as ``metrics.jsonl`` records (the schema of :mod:`sec.metrics`, the same as
the TRL backend writes): verl's ``file`` log and the dataset's curriculum log, merged step by step
while verl runs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sec.backends.verl.paths import VerlPaths
from sec.budget import Budget
from sec.evaluate import pool_pass_at_1
from sec.metrics import MetricsWriter, read_metrics

#: verl metric -> metrics.jsonl key (sec/metrics.py); every numeric verl metric is also kept under verl/
_RENAME = {
    "critic/score/mean": "reward_mean",
    "response_length/mean": "response_length",
    "timing_s/step": "step_time_s",
    "timing_s/gen": "generation_s",
    "actor/pg_loss": "loss",
    "actor/grad_norm": "grad_norm",
    "actor/lr": "learning_rate",
}


_VAL = re.compile(r"^val-core/(?P<task>[^/]+)/(?P<group>[^/]+)/acc/mean@(?P<k>\d+)$")
#: per-group means of compute_score's ``answered`` / ``reward_timeout`` over the validation rollouts
_VAL_COUNT = re.compile(r"^val-aux/(?P<task>[^/]+)/(?P<group>[^/]+)/(?P<what>answered|reward_timeout)/mean@(?P<k>\d+)$")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return read_metrics(path) if path.exists() else []


class MetricsMerger:
    """Folds verl's ``file`` log and the dataset's curriculum log into ``metrics.jsonl``.

    A train record of step t is written once verl has logged step t and the curriculum has
    taken its feedback (or the step is the run's last, which verl never feeds back: it carries
    the curriculum values its batch was drawn with). Eval records come from verl's
    ``val-core/<task>/<group>/acc/mean@<k>`` metrics (pass@1 averaged over k samples; a group is
    ``level_<k>`` or a named eval set), with ID / OOD as the problem-weighted means over the
    training levels and ``id_groups`` / the held-out levels and ``ood_groups``.

    Args:
        writer: the run's metrics writer.
        paths: the run's verl files.
        total_steps: training steps of the run.
        n_problems: validation problems per (task, group).
        train_levels, ood_levels: the task's level splits.
        id_groups, ood_groups: named eval sets pooled into ID / OOD (Math: ``task.id_sets``, ...).
        groups_per_step, num_generations: a step's groups and rollouts per group, for the budget
            fields (sec/budget.py: verl's legacy trainer rolls out one batch per step; completion
            tokens = verl's ``response_length/mean`` x rollouts; groups with signal from the
            curriculum's ``zero_variance_frac``); 0 = no budget fields.

    The budget's cumulative fields continue from the last train record already written (a resumed
    run).
    """

    def __init__(
        self,
        writer: MetricsWriter,
        paths: VerlPaths,
        total_steps: int,
        n_problems: Mapping[tuple[str, str], int],
        train_levels: Sequence[int],
        ood_levels: Sequence[int],
        id_groups: Sequence[str] = (),
        ood_groups: Sequence[str] = (),
        groups_per_step: int = 0,
        num_generations: int = 0,
    ) -> None:
        self.writer = writer
        self.paths = paths
        self.total_steps = total_steps
        self.n_problems = dict(n_problems)
        self.id_groups = {f"level_{int(x)}" for x in train_levels} | {str(g) for g in id_groups}
        self.ood_groups = {f"level_{int(x)}" for x in ood_levels} | {str(g) for g in ood_groups}
        done = read_metrics(writer.path)
        self.groups, self.g = int(groups_per_step), int(num_generations)
        self.budget = Budget.resume(done)
        self.written = {(int(r["step"]), str(r["kind"])) for r in done}

    def poll(self, final: bool = False, max_step: int | None = None) -> int:
        """Write every record that is complete; ``final`` writes the train records that still
        wait for curriculum feedback too (verl has exited). Returns how many were written."""
        verl: dict[int, dict[str, Any]] = {}
        for line in _read_jsonl(self.paths.verl_log):
            if isinstance(line.get("data"), dict) and "step" in line:
                verl.setdefault(int(line["step"]), {}).update(line["data"])
        cur: dict[tuple[int, str], dict[str, Any]] = {}
        for line in _read_jsonl(self.paths.curriculum_log):
            cur[(int(line["step"]), str(line["phase"]))] = line
        n = 0
        for step in sorted(verl):
            if max_step is not None and step > max_step:
                break
            data = verl[step]
            if "training/global_step" in data and (step, "train") not in self.written:
                fed = (step, "update") in cur
                if not (fed or final or step >= self.total_steps):
                    break  # later steps wait too: records stay in step order
                self.writer.write(self._train_record(step, data, cur.get((step, "draw")), cur.get((step, "update"))))
                self.written.add((step, "train"))
                n += 1
            evals = self._eval_records(step, data)
            if evals and (step, "eval") not in self.written:
                self.writer.write_many(evals)
                self.written.add((step, "eval"))
                n += len(evals)
        return n

    def _train_record(
        self, step: int, data: Mapping[str, Any], draw: Mapping[str, Any] | None, update: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {"step": step, "kind": "train"}
        for k, v in data.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("val-"):
                if k in _RENAME:
                    rec[_RENAME[k]] = v
                rec[f"verl/{k}"] = v
        if "step_time_s" in rec:
            rec["wall_time_s"] = rec["step_time_s"]
        for part in (draw, update):
            if part:  # scalars only: the draw / update records' row lists stay in the curriculum log
                rec.update({k: v for k, v in part.items() if k not in ("step", "phase") and not isinstance(v, list)})
        rec["curriculum/fed_back"] = update is not None
        if self.groups and self.g:
            rec.update(self._budget(rec, data))
        rec.update(self._eval_counts(data))
        return rec

    def _budget(self, rec: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The step's budget fields (class doc)."""
        rollouts = self.groups * self.g
        tokens = round(float(data.get("response_length/mean", 0.0)) * rollouts)
        zero = rec.get("zero_variance_frac")
        signal = 0 if zero is None else round((1.0 - float(zero)) * self.groups)
        self.budget.add_draw(self.groups, self.g, tokens, signal)
        for key, verl_key in (("generation_s", "timing_s/gen"), ("reward_s", "timing_s/reward")):
            if isinstance(data.get(verl_key), (int, float)):
                self.budget.add_seconds(key, float(data[verl_key]))
        curriculum_s = float(rec.get("curriculum/overhead_ms", 0.0)) / 1e3
        return self.budget.end_step(float(rec.get("wall_time_s", 0.0)), self.groups, curriculum_s=curriculum_s)

    def _eval_counts(self, data: Mapping[str, Any]) -> dict[str, int]:
        """``reward/eval_checks`` / ``reward/eval_timeouts`` of the validation logged with this
        step (0 without one), as the TRL backend counts them: answers checked, and checks that
        timed out, from verl's per-group means x validation problems x samples."""
        counts = {"reward/eval_checks": 0.0, "reward/eval_timeouts": 0.0}
        for key, v in data.items():
            m = _VAL_COUNT.match(key)
            if m and isinstance(v, (int, float)):
                n = self.n_problems.get((m["task"], m["group"]), 1) * int(m["k"])
                counts["reward/eval_checks" if m["what"] == "answered" else "reward/eval_timeouts"] += float(v) * n
        return {k: round(v) for k, v in counts.items()}

    def _eval_records(self, step: int, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """verl's per-group means ``val-core/<task>/<group>/acc/mean@<k>`` as eval records, with
        ID / OOD pooled by :func:`sec.evaluate.pool_pass_at_1` (each group weighted by its
        validation problems)."""
        per: dict[str, dict[str, tuple[float, int]]] = {}
        for key, v in data.items():
            m = _VAL.match(key)
            if m and isinstance(v, (int, float)):
                per.setdefault(m["task"], {})[m["group"]] = (float(v), int(m["k"]))
        out = []
        for task in sorted(per):
            k = next(iter(per[task].values()))[1]
            totals = {}
            for g, (mean, _) in per[task].items():
                n = self.n_problems.get((task, g), 1)
                totals[g] = (mean * n, n)
            for pooled in pool_pass_at_1(totals, self.id_groups, self.ood_groups):
                out.append({"step": step, "kind": "eval", "task": task, **pooled, "k_samples": k})
        return out
