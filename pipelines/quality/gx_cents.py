"""A Great Expectations expectation GX lacks: money columns that must add up, to the cent, row by row.

GX compares a column with a literal or with one other column; it cannot say "a + b == c". Its
``expect_multicolumn_sum_to_equal`` sums columns to a constant, on the value view's floats (gx_engine.py reads
decimal(18,2) money as float64), where 500.00 + 32.50 == 532.50 may miss by one unit in the last place. This
expectation reads each value back as whole cents first (x 100, rounded: exact for any amount under 2^53
cents), so the sum is exact: ``column_list`` = the parts, then the total they must make.

Imported by ``gx_suites.py``, which registers the expectation and its metric with GX on import.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)


class MulticolumnCentsReconcile(MulticolumnMapMetricProvider):
    """Per row: the columns but the last, in whole cents, sum to the last (a null anywhere: unexpected)."""

    condition_metric_name = "multicolumn_cents.reconcile"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser",
                             "ignore_row_if")
    condition_value_keys = ()

    @multicolumn_condition_partial(engine=PandasExecutionEngine)  # type: ignore[misc]
    def _pandas(cls, column_list: Any, **kwargs: Any) -> Any:
        cents = (column_list * 100).round()
        return cents.iloc[:, :-1].sum(axis=1, skipna=False) == cents.iloc[:, -1]


class ExpectMulticolumnCentsToReconcile(MulticolumnMapExpectation):
    """Expect the money columns of ``column_list`` but the last to add up to the last, to the cent, per row."""

    map_metric: ClassVar[str] = "multicolumn_cents.reconcile"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)
