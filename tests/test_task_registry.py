"""Tasks are modules registered by name: every task config names a registered task, a task
outside the project (a module + its YAML, nothing else) runs a real job, and the task layer has
no import cycle and no oversized file."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from sec.metrics import read_metrics
from sec.tasks import cache_key, get_task, load_task_data, puzzle_reward, task_for, task_labels
from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import Task
from sec.workspace import task_components

TASK_CONFIGS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


def components(task: str) -> list[dict]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return task_components(compose("config", overrides=[f"task={task}", "profile=tiny"]).task)


@pytest.mark.parametrize("config", TASK_CONFIGS)
def test_every_task_config_names_a_registered_task_with_a_label(config):
    labels = task_labels()
    assert OmegaConf.load(CONF / "task" / f"{config}.yaml").label == labels[config]  # set in every YAML
    for comp in components(config):
        task = task_for(comp)
        assert isinstance(task, Task) and task.name == comp["name"]
        assert comp["module"] == type(task).__module__  # the config names the module that registers it
        assert comp["label"] == labels[comp["name"]]
        assert len(cache_key(comp)) == 16


def test_paper_labels_come_from_the_task_configs():
    from analysis.tables import label

    assert [label("task", t) for t in ("countdown", "zebra", "arc", "math", "arith")] == [
        "Countdown", "Zebra", "ARC-1D", "Math", "Arith",
    ]  # fmt: skip


def test_importing_the_package_imports_no_task_module():
    code = "import sys, sec.tasks; print(sorted(m for m in sys.modules if m.startswith('sec.tasks.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert not loaded & {f"sec.tasks.{t}" for t in ("countdown", "zebra", "arc", "arith", "math")}


def test_unknown_task_and_broken_module_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown task 'chess': cannot import module 'sec.tasks.chess'") as err:
        task_for({"name": "chess"})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"module 'sec.tasks.data' registers"):
        get_task("data")
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):  # a real import error is not hidden
        task_for({"name": "needs", "module": "needs_missing_dep"})


# ------------------------------------------------------------------------------------------ a toy task

TOY_MODULE = '''
"""Echo: repeat a number of `digits` digits (a toy task: this module and its YAML are all of it)."""
import random

from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import register

QUESTION = "Repeat the number {n} and put it inside \\\\boxed{{}}."


class Items:
    def __init__(self, digits, seed):
        self.digits, self.seed = digits, seed

    def __getitem__(self, idx):
        n = random.Random(self.seed + idx).randrange(10 ** (self.digits - 1), 10**self.digits)
        return {"question": "", "answer": str(n), "metadata": {"n": n}}


class EchoTask(PuzzleTask):
    name = "echo"
    generator = "echo"
    prompt_texts = (QUESTION,)

    def make_dataset(self, level_kwargs, seed):
        return Items(int(level_kwargs["digits"]), seed)

    def validate_level(self, name, level, kwargs):
        if set(kwargs) != {"digits"}:
            raise ValueError(f"task {name!r}: level {level} needs exactly `digits`")
        return kwargs

    def question(self, item):
        return QUESTION.format(n=item["metadata"]["n"])

    def is_correct(self, answer_text, answer):
        return answer_text.strip() == answer["answer"]


register(EchoTask())
'''

TOY_YAML = """
name: echo
module: toytasks.echo
label: Echo
levels: {1: {digits: 1}, 2: {digits: 2}, 3: {digits: 3}, 4: {digits: 4}}
train_levels: [1, 2, 3]
ood_levels: [4]
test_levels: [1, 2, 3, 4]
train_per_level: 8
test_per_level: 2
seed: 7
answer_extraction: boxed
format_reward: 0.1
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A task module in a temporary package and its YAML in a temporary conf dir."""
    pkg = tmp_path / "src" / "toytasks"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "echo.py").write_text(textwrap.dedent(TOY_MODULE))
    conf = tmp_path / "conf" / "task"
    conf.mkdir(parents=True)
    (conf / "echo.yaml").write_text(TOY_YAML)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return tmp_path


def test_a_toy_task_builds_caches_and_scores_through_the_registry(toy):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.searchpath=[file://{toy / 'conf'}]", "task=echo", "profile=tiny"])
    comp = task_components(cfg.task)[0]
    task = task_for(comp)
    assert isinstance(task, PuzzleTask) and type(task).__module__ == "toytasks.echo"
    df = load_task_data(comp, toy / "cache")
    assert len(df) == 3 * 4 + 4 * 2 and set(df["task"]) == {"echo"}
    row = df[df["level"] == 4].iloc[0].to_dict()
    gold = json.loads(row["answer"])["answer"]
    assert len(gold) == 4 and row["question"] == f"Repeat the number {gold} and put it inside \\boxed{{}}."
    assert puzzle_reward(f"\\boxed{{{gold}}}", row, train=False, format_reward=0.1, extraction="boxed") == 1.0
    assert puzzle_reward("\\boxed{0}", row, train=True, format_reward=0.1, extraction="boxed") == pytest.approx(0.1)
    assert (toy / "cache" / "echo" / f"{cache_key(comp)}.parquet").exists()
    assert task_labels(toy / "conf" / "task") == {"echo": "Echo"}


def test_a_toy_task_runs_a_tiny_job(toy):
    run = toy / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(toy / "src"), str(ROOT)]))
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", f"hydra.searchpath=[file://{toy / 'conf'}]", "task=echo",
         "profile=tiny", "curriculum=sec", f"hydra.run.dir={run}", f"paths.cache_dir={toy / 'cache'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    records = read_metrics(run / "metrics.jsonl")
    assert [x["step"] for x in records if x["kind"] == "train"] == [1, 2]
    evals = {x["split"] for x in records if x["kind"] == "eval" and x["task"] == "echo"}
    assert {"id", "ood", "level_1", "level_4"} <= evals
    assert (run / "done.json").exists()


# ---------------------------------------------------------------------------------- layout of sec/tasks

TASKS_DIR = ROOT / "sec" / "tasks"


def _imports(path: Path) -> set[str]:
    """``sec.tasks.*`` modules a file imports at run time, at module level or inside functions
    (not those under ``if TYPE_CHECKING:``, which only the type checker reads)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sec.tasks"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sec.tasks")}
    modules = {f"sec.tasks.{p.stem}" for p in TASKS_DIR.glob("*.py") if p.stem != "__init__"}
    return out & modules


def test_the_task_modules_have_no_import_cycle():
    graph = {f"sec.tasks.{p.stem}": _imports(p) for p in TASKS_DIR.glob("*.py") if p.stem != "__init__"}

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(node) :], node])}")
        for nxt in graph.get(node, ()):
            visit(nxt, [*path, node])

    for module in graph:
        visit(module, [])


def test_no_task_module_is_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in TASKS_DIR.glob("*.py")}
    assert max(sizes.values()) <= 400, sizes
