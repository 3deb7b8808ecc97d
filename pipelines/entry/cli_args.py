"""What the ``riskline`` subcommand modules share: the one-line user error and the date argument type."""

from __future__ import annotations

import argparse
import datetime as dt


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (want YYYY-MM-DD): {text!r}") from None
