"""The benchmark's stage parts: every timed function exists where the stage looks it up.

The layered move left the bench wrapping ``pipelines.domain.features.build_ledger``, which no longer
existed: ``make bench`` failed at its features stage and nothing in the suite noticed.
"""

from __future__ import annotations

import importlib

import pytest

from tools.bench import STAGE_PARTS


@pytest.mark.parametrize("stage", sorted(STAGE_PARTS))
def test_every_timed_part_exists_where_the_bench_wraps_it(stage: str) -> None:
    for module_name, name, _part in STAGE_PARTS[stage]:
        function = getattr(importlib.import_module(module_name), name, None)
        assert callable(function), f"{stage}: {module_name}.{name} does not exist"
