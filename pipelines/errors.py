"""Exception types shared across layers, with no heavy imports (safe for DAG parsing).

:class:`IngestError` is the one-line format every bad input ends in:
``dataset dt=D file=F column=C: message -> next step``.
"""

from __future__ import annotations

import datetime as dt


class IngestError(Exception):
    """The landing partition breaks the contract; nothing was written."""

    def __init__(
        self,
        message: str,
        *,
        dataset: str,
        date: dt.date,
        file: str | None = None,
        column: str | None = None,
        hint: str = "",
    ) -> None:
        self.dataset, self.date, self.file, self.column = dataset, date, file, column
        where = f"{dataset} dt={date.isoformat()}"
        if file:
            where += f" file={file}"
        if column:
            where += f" column={column}"
        text = f"{where}: {message}"
        if hint:
            text += f" -> {hint}"
        super().__init__(text)


class ContractError(ValueError):
    """A frame cannot be conformed to the contract (raised by the pure step, wrapped by ingest).

    ``hint`` is the next step when it is not the default one (schema drift upstream).
    """

    def __init__(self, column: str, message: str, hint: str = "") -> None:
        self.column, self.hint = column, hint
        super().__init__(message)
