"""Landing file names and delivery order: which files of a drop are one delivery, and which deliveries are
later (docs/contracts.md, "Delivery order"). Pure: names in, order out; ``pipelines/store/drops.py`` reads
the files in this order and ``conform.keep_latest_delivery`` lets a later delivery's rows win.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


# A landing file is named part-<N>[<separator><anything>], N being its delivery's sequence number: later
# deliveries have higher numbers, compared as integers (part-10 comes after part-9; zero padding and a
# UTC timestamp written as digits, part-20261125093000.parquet, sort the same way). Files sharing N are
# one delivery. docs/contracts.md "Delivery order".
DELIVERY_NAME = re.compile(r"part-(\d{1,18})(?:[-_.].*)?", re.DOTALL)
# Spark names the files of one write part-<task>-<job uuid>[-c<n>][.<codec>].parquet (Databricks' commit
# protocol: part-<task>-tid-<id>-<uuid>-...): <task> is the writing task's index within that one job, not a
# delivery. Reading it as one made task 1 a "correction" of task 0 and let a duplicated account's rogue row
# win silently (review of stop 28, F4).
SPARK_TASK_FILE = re.compile(
    r"part-\d{1,18}-(?:tid-\d{1,20}-)?"
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?:[-_.].*)?", re.DOTALL)
SPARK_WRITE = 0  # the delivery sequence every Spark task file of a drop shares: together they are one delivery


def delivery_sequence(name: str) -> int | None:
    """The delivery sequence number in a landing file name (``part-<N>...``), None if it has none. A Spark
    task file (:func:`spark_write_job`) has none: its number is a task's index within one write."""
    if spark_write_job(name) is not None:
        return None
    match = DELIVERY_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def spark_write_job(name: str) -> str | None:
    """The write job's uuid (lower case) in a Spark task file name (``part-<task>-<uuid>...``), else None."""
    match = SPARK_TASK_FILE.fullmatch(name)
    return match.group(1).lower() if match else None


class DeliveryOrderError(ValueError):
    """The files of a drop cannot be put in delivery order; ``file`` names the one to fix."""

    def __init__(self, file: str, message: str, hint: str) -> None:
        self.file, self.hint = file, hint
        super().__init__(message)


def order_deliveries(names: Sequence[str]) -> list[tuple[str, int]]:
    """The drop's file names with their delivery sequence, oldest delivery first (name order within one).

    Spark task files (:func:`spark_write_job`) are one delivery, whichever task numbers and jobs they
    carry: nothing in their names orders them, so their rows are compared as one delivery's (a key with
    two different rows is a conflict, never a correction). Two jobs' files are one delivery for the same
    reason. Beside numbered deliveries they are refused: nothing says whether the write came before or
    after ``part-<N>``, and either answer could let the stale rows win.

    Raises:
        DeliveryOrderError: a name carries no delivery sequence, or Spark task files sit beside
            numbered deliveries.
    """
    spark: list[tuple[int, str]] = []
    numbered: list[tuple[int, str]] = []
    for name in names:
        seq = delivery_sequence(name)
        if spark_write_job(name) is not None:
            spark.append((SPARK_WRITE, name))
        elif seq is None:
            raise DeliveryOrderError(
                name, "file name carries no delivery sequence: expected part-<N>[-suffix].parquet, N the "
                      "delivery's sequence number (later deliveries higher)",
                hint="ask upstream to name the file by the contract (docs/contracts.md, Delivery order), "
                     "then rerun ingest for this date")
        else:
            numbered.append((seq, name))
    if spark and numbered:
        first = min(numbered)[1]
        raise DeliveryOrderError(
            min(spark)[1],
            "Spark task files (part-<task>-<uuid>: one write, whose task numbers order nothing) sit beside "
            f"numbered deliveries ({first}): which of them is the later delivery is unknown, so neither may "
            "correct the other",
            hint="ask upstream to redeliver the date either as one Spark write or as part-<N> deliveries only "
                 "(docs/contracts.md, Delivery order), then rerun ingest for this date")
    return [(name, seq) for seq, name in sorted(spark + numbered)]
