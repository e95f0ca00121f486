"""Adding a curriculum touches only its module and its YAML (issue 16, done-when): a toy class in
a temporary package and its YAML in a temporary config dir run a real tiny job, unchanged code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT
from sec.metrics import read_metrics

TOY_MODULE = '''
"""A toy curriculum: always the hardest arm (the largest value of the order field)."""

import numpy as np

from sec.curriculum import CurriculumPolicy


class Hardest(CurriculumPolicy):
    def __init__(self, arm_of_problem, *, name, arm_fields, total_steps, seed, order_field):
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        self.hardest = int(np.argmax(self.numeric_field(order_field)))

    def _probs(self):
        p = np.zeros(self.num_arms)
        p[self.hardest] = 1.0
        return p

    def _sample(self, n):
        members = self.members[self.hardest]
        return members[self.rng.integers(0, members.size, n)]
'''

TOY_YAML = """
# toy: every batch from the hardest training level
_target_: toy_curricula.hardest.Hardest
name: toy
arm_fields: [level]
order_field: level
"""


def test_a_toy_curriculum_from_its_own_module_and_yaml_runs_a_tiny_job(tmp_path):
    package = tmp_path / "pkgs" / "toy_curricula"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "hardest.py").write_text(textwrap.dedent(TOY_MODULE))
    conf = tmp_path / "conf" / "curriculum"
    conf.mkdir(parents=True)
    (conf / "toy.yaml").write_text(TOY_YAML)

    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(tmp_path / "pkgs"), str(ROOT)]))
    args = [
        "curriculum=toy",
        "profile=tiny",
        "task=countdown",
        "eval.every=0",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.run.dir={run_dir}",
    ]
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}"

    train = [x for x in read_metrics(run_dir / "metrics.jsonl") if x["kind"] == "train"]
    assert [x["step"] for x in train] == [1, 2]
    for x in train:  # every problem from level 3, the hardest training level of countdown
        assert x["curriculum/sampled_level_mean"] == 3.0
        assert (x["curriculum/3/prob"], x["curriculum/1/prob"]) == (1.0, 0.0)
        assert "curriculum/3/q" not in x and x["curriculum/3/count"] > 0
    assert json.loads((run_dir / "done.json").read_text())
    state = json.loads(next((run_dir / "checkpoints").glob("*/curriculum.json")).read_text())
    assert state["name"] == "toy"


def test_a_curriculum_that_cannot_apply_refuses_the_run_in_one_line(tmp_path):
    # arms by task only (valid for the puzzle mix), but E2H schedules over numeric levels
    args = ["curriculum=e2h", "curriculum.arm_fields=[task]", "profile=tiny", "task=puzzles"]
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", *args, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 1
    # the last line (data generation may print progress before the curriculum is built)
    assert r.stderr.strip().splitlines()[-1] == (
        "sec.launch: invalid config: curriculum=e2h orders arms by the numeric arm field 'level', "
        "which arm_fields ['task'] do not provide"
    )
