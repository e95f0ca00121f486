"""Every local model source builds the same model as before the ``sec/models/`` package (issue 24,
item 3): a fresh build of each case of tests/fixtures/record_model_builds.py has the cache key
(directory name) and the sha256 of every file recorded at 7b61fe0 (tests/fixtures/model_builds.json;
two builds there were bit-identical)."""

from __future__ import annotations

import json

import pytest

from fixtures.record_model_builds import OUT, build, cases

RECORDED = json.loads(OUT.read_text())
#: builds of a minute or more on one busy core (the package case also writes 540 MB)
SLOW = {"pretrain_testbed_mini", "package_smollm2_135m"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in sorted(RECORDED)]
)
def test_a_fresh_build_is_bit_identical_to_the_recorded_one(name, tmp_path):
    assert build(name, cases()[name], tmp_path) == RECORDED[name]


def test_every_case_is_recorded():
    assert sorted(cases()) == sorted(RECORDED)
