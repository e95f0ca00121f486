"""One TRL generation batch from the groups dynamic sampling keeps across several rollout batches
(sec/dynamic_sampling.py; used by the TRL backend, sec/backends/trl.py).

TRL's ``GRPOTrainer`` / ``RLOOTrainer._generate_and_score_completions`` return per-row tensors padded
per call (TRL 1.16: prompts on the left, completions on the right); :func:`merge_groups` takes the
kept groups' rows of each call and pads them to one width, so TRL's buffer split and loss see one
batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["merge_groups"]

#: TRL output keys merge_groups knows: per-row tensors (B,) or (B, T); prompts are left-padded
_MERGE_PAD = {
    "prompt_ids": ("left", None),
    "prompt_mask": ("left", 0),
    "completion_ids": ("right", None),
    "completion_mask": ("right", 0),
    "advantages": (None, None),
    "old_logps": (None, None),
    "old_per_token_logps": ("right", 0.0),
    "ref_per_token_logps": ("right", 0.0),
    "sampling_per_token_logps": ("right", 0.0),
    "importance_sampling_ratio": ("right", 1.0),
}


def merge_groups(outs: list[dict[str, Any]], plan: list[tuple[int, Any, Any]], g: int, pad_id: int) -> dict[str, Any]:
    """One TRL generation batch from the groups ``plan`` picks in several (dynamic sampling).

    Args:
        outs: TRL's ``_generate_and_score_completions`` outputs, one per draw; per-row tensors of
            shape (B_d,) or (B_d, T_d), ``num_items_in_batch`` a scalar.
        plan: :meth:`sec.dynamic_sampling.GroupSelection.plan`: per draw, the groups taken and those
            of them at zero weight (their ``completion_mask`` and ``advantages`` set to 0, so they add
            nothing to the loss: with ``loss_type=dapo``/``bnpo`` the update is that of the kept groups
            alone; per-sequence means, GRPO's ``grpo`` loss and RLOO, scale it by kept / total).
        g: rollouts per group.
        pad_id: the tokenizer's pad token id (``None`` pads of ``*_ids``).

    Returns:
        the merged output, rows group by group in plan order, widths padded to the widest draw;
        ``num_items_in_batch`` recounted over the weighted rows (TRL's definition: completion tokens
        in the loss).

    Raises:
        NotImplementedError: an output key this merge does not know (multimodal or tool inputs).
    """
    import torch
    import torch.nn.functional as F

    unknown = {k for o in outs for k in o} - set(_MERGE_PAD) - {"num_items_in_batch"}
    if unknown:
        raise NotImplementedError(f"dynamic sampling cannot merge TRL outputs {sorted(unknown)} (text-only rollouts)")
    rows, zero_rows = [], []
    for d, groups, zero in plan:
        r = (np.asarray(groups)[:, None] * g + np.arange(g)).ravel()
        rows.append((d, torch.as_tensor(r, dtype=torch.long)))
        z = np.isin(np.asarray(groups), np.asarray(zero))
        zero_rows.append(np.repeat(z, g))
    zero = torch.as_tensor(np.concatenate(zero_rows), dtype=torch.bool)
    merged: dict[str, Any] = {}
    for key in outs[0]:
        if key == "num_items_in_batch":
            continue
        side, value = _MERGE_PAD[key]
        parts = [outs[d][key][r.to(outs[d][key].device)] for d, r in rows]
        if parts[0].dim() == 2:
            width = max(p.shape[1] for p in parts)
            fill = pad_id if value is None else value
            parts = [
                F.pad(p, (width - p.shape[1], 0) if side == "left" else (0, width - p.shape[1]), value=fill)
                for p in parts
            ]
        merged[key] = torch.cat(parts)
    if bool(zero.any()):
        merged["completion_mask"] = merged["completion_mask"].masked_fill(
            zero.to(merged["completion_mask"].device)[:, None], 0
        )
        merged["advantages"] = merged["advantages"].masked_fill(zero.to(merged["advantages"].device), 0.0)
    if "num_items_in_batch" in outs[0]:
        merged["num_items_in_batch"] = merged["completion_mask"].sum()
    return merged
