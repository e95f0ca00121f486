"""Regression of every curriculum config against traces recorded on ``main``.

``tests/data/curriculum_traces.json`` holds, for every ``conf/curriculum/*.yaml`` of ``main`` at
c8547f6 (plus overridden variants), the seeded draws, probabilities, per-arm rewards and logged
stats of 12 steps fed with fixed pseudo-random |A| and task rewards, produced by the code of that
commit (``python tests/test_curriculum_traces.py --record`` there). Any refactor of the
curriculum core must reproduce them: draws, counts and every other non-float exactly, floats to
within a few units in the last place (:func:`same_trace`). Not to the bit, because ``np.exp`` is not
the same function on every CPU: numpy's float64 ``exp`` has an AVX-512 kernel and falls back to the
C library on AVX2-only machines, and the two differ in the last bit of some softmax probabilities
(the fixture was recorded on an AVX-512 machine; on an AVX2-only AMD EPYC 12 of 32 cases differed
by one ulp, every draw equal).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "curriculum_traces.json"
STEPS, SLOTS, GROUP = 12, 6, 4

#: case id -> (config, overrides); seeds 0 and 7 of each
CASES: dict[str, tuple[str, list[str]]] = {
    "sec": ("sec", []),
    "sec_all": ("sec", ["curriculum.update_rule=all"]),
    "sec_tau0.3_qinit0.2": ("sec", ["curriculum.tau=0.3", "curriculum.q_init=0.2"]),
    "sec_2d": ("sec_2d", []),
    "sec_ucb": ("sec_ucb", []),
    "sec_ucb_c2": ("sec_ucb", ["curriculum.selection.c=2.0", "curriculum.tau=0.5"]),
    "sec_thompson": ("sec_thompson", []),
    "sec_thompson_all": ("sec_thompson", ["curriculum.update_rule=all", "curriculum.selection.sigma=0.2"]),
    "sec_egreedy": ("sec_egreedy", []),
    "sec_egreedy_eps0.5": ("sec_egreedy", ["curriculum.selection.epsilon=0.5"]),
    "sec_progress": ("sec_progress", []),
    "sec_success": ("sec_success", []),
    "sec_success_thr0.1": ("sec_success", ["curriculum.objective.threshold=0.1"]),
    "random": ("random", []),
    "ordered": ("ordered", []),
    "reverse": ("reverse", []),
}
#: the overrides as main spelled them when the fixture was recorded (keys renamed since);
#: re-recording on the new code with CASES gives a byte-identical file
MAIN_OVERRIDES = {
    "sec_all": ["curriculum.update=all"],
    "sec_ucb_c2": ["curriculum.ucb_c=2.0", "curriculum.tau=0.5"],
    "sec_thompson_all": ["curriculum.update=all", "curriculum.thompson_sigma=0.2"],
    "sec_egreedy_eps0.5": ["curriculum.epsilon=0.5"],
    "sec_success_thr0.1": ["curriculum.success_threshold=0.1"],
}
SEEDS = (0, 7)
#: relative tolerance of a float in a trace: ~50 ulps of float64, far below any change a
#: refactor of the curriculum makes (those move probabilities in the 3rd-10th digit)
FLOAT_RTOL = 1e-14


def same_trace(got: Any, want: Any) -> bool:
    """``got == want`` with floats equal to within :data:`FLOAT_RTOL` (ints, bools, strings,
    draws and the structure exactly)."""
    if isinstance(want, float) and isinstance(got, float):
        return abs(got - want) <= FLOAT_RTOL * max(abs(got), abs(want)) or got == want
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(same_trace(got[k], want[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same_trace(g, w) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


def arms_for(fields: list[str]) -> list[tuple]:
    """Training-set arms: levels 1..3 of sizes 2 / 3 / 5, or two tasks x those levels."""
    levels = [1] * 2 + [2] * 3 + [3] * 5
    if fields == ["level"]:
        return [(lv,) for lv in levels]
    return [(t, lv) for t in ("countdown", "zebra") for lv in levels]


def composed(name: str, overrides: list[str]) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"curriculum={name}", *overrides])
    return OmegaConf.to_container(cfg.curriculum, resolve=True)  # type: ignore[return-value]


def drive(policy: Any, n_problems: int, seed: int) -> list[dict[str, Any]]:
    """12 steps of draw / update with inputs from their own seeded generator."""
    feed_rng = np.random.default_rng(1000 + seed)
    trace = []
    for _ in range(STEPS):
        probs = list(policy.probs().values())
        idx = policy.sample(SLOTS)
        rows = np.repeat(idx, GROUP)
        abs_adv = feed_rng.uniform(0.0, 2.0, rows.size)
        rewards = feed_rng.choice([0.0, 0.1, 1.0], rows.size)
        r = policy.update(rows, abs_adv, rewards)
        trace.append(
            {
                "probs": probs,
                "drawn": idx.tolist(),
                "rewards": {"-".join(map(str, a)): v for a, v in sorted(r.items(), key=str)},
                "stats": policy.stats(),
            }
        )
    return trace


def record_all(build: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"_configs": sorted(p.stem for p in (ROOT / "conf" / "curriculum").glob("*.yaml"))}
    for case, (name, overrides) in CASES.items():
        cfg = composed(name, overrides)
        arms = arms_for(list(cfg["arm_fields"]))
        for seed in SEEDS:
            policy = build(cfg, arms, total_steps=STEPS, seed=seed)
            out[f"{case}/seed{seed}"] = drive(policy, len(arms), seed)
    return out


def build_new(cfg: dict[str, Any], arms: list[tuple], *, total_steps: int, seed: int) -> Any:
    from sec.curriculum import build_curriculum

    return build_curriculum(cfg, arms, total_steps=total_steps, seed=seed)


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("key", [f"{c}/seed{s}" for c in CASES for s in SEEDS])
def test_trace_matches_main(recorded, key):
    case, seed = key.rsplit("/seed", 1)
    name, overrides = CASES[case]
    cfg = composed(name, overrides)
    arms = arms_for(list(cfg["arm_fields"]))
    got = json.loads(json.dumps(drive(build_new(cfg, arms, total_steps=STEPS, seed=int(seed)), len(arms), int(seed))))
    want = recorded[key]
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        assert same_trace(g, w), f"{key} step {step} differs: {g} != {w}"


def test_every_config_of_main_has_a_trace(recorded):
    # the configs main had when the traces were recorded: each has a case, and each still exists
    on_main = set(recorded["_configs"])
    assert on_main == {name for name, _ in CASES.values()}
    assert on_main <= {p.stem for p in (ROOT / "conf" / "curriculum").glob("*.yaml")}
    assert {k.rsplit("/seed", 1)[0] for k in recorded if k != "_configs"} == set(CASES)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    sys.path.insert(0, str(ROOT))
    FIXTURE.write_text(json.dumps(record_all(build_new), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


def test_same_trace_tolerates_a_last_bit_only():
    # the one-ulp softmax difference between numpy's AVX-512 and AVX2 exp, as measured
    want = {"probs": [0.4272478307468641, 0.2522776095627463], "drawn": [0, 2], "count": 5}
    assert same_trace({"probs": [0.4272478307468641, 0.25227760956274636], "drawn": [0, 2], "count": 5}, want)
    assert not same_trace({"probs": [0.4272478307468641, 0.2522776095628], "drawn": [0, 2], "count": 5}, want)
    assert not same_trace({"probs": [0.4272478307468641, 0.2522776095627463], "drawn": [0, 1], "count": 5}, want)
    assert not same_trace({"probs": [0.4272478307468641, 0.2522776095627463], "drawn": [0, 2], "count": 5.0}, want)
    assert not same_trace({"probs": [0.4272478307468641], "drawn": [0, 2], "count": 5}, want)
