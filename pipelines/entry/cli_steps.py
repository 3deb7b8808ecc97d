"""The next steps of ``riskline``'s error lines that depend on what the lake holds: each returns the text
after ``error: `` (``<what> -> <next step>``), naming a step only where it can work now.

Kept apart from the subcommands (pipelines/entry/cli.py) because each looks at several zones, the registry
or an exception's kind to choose the step.
"""

from __future__ import annotations

import datetime as dt
import errno
from pathlib import Path

from pipelines.errors import IngestError
from pipelines.model.metrics import LeakageSuspectedError
from pipelines.stages.features import IncompleteHistoryError
from pipelines.store import chain, drops, zones
from pipelines.store.publish import PublishError, PublishIncompleteError
from pipelines.vocab import DATASETS


def nothing_to_validate(root: Path, day: dt.date) -> str:
    """Why ``day`` has nothing to validate (no curated partition, no published output) and what comes first."""
    curated = zones.curated(root, DATASETS[0], day)
    what = (f"validate dt={day}: nothing to validate: no curated partition "
            f"({curated.parent.parent}/{{{','.join(DATASETS)}}}/{curated.name}) and no published output of {day}")
    ingest = f"`riskline ingest --date {day}` (it validates each drop as it curates it)"
    missing = drops.undelivered_dataset(root, day)
    if missing is None:
        landing = zones.landing(root, DATASETS[0], day)
        return (f"{what}; its landing drops are there ({landing.parent.parent}/{{{','.join(DATASETS)}}}/"
                f"{landing.name}) -> ingest the date first: {ingest}")
    return f"{what}; the {missing} landing drop has not arrived either -> " + drops.undelivered_hint(
        root, missing, day, then=ingest)


def publish_step(root: Path, day: dt.date) -> str:
    """The next step for a night not published: a published date to read instead when ``day`` is before them
    all, and what would publish ``day``, only where it can work now (the run or rebuild, what must come first)."""
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import ModelRegistry

    published = chain.published_nights(root)
    first = published[0] if published and day < published[0] else None
    pick = f"the first published night is {first}: pick a date from it on (`riskline summary --as-of {first}`)"
    later = [n for n in zones.night_dates(root) if n > day]
    rebuild = f"`riskline rebuild --from {day} --force-chain`"
    missing = drops.undelivered_dataset(root, day)
    if missing is not None:  # every night ingests its own drops first
        book = zones.landing_dates(root, missing)[:1]
        if first and book and day < book[0]:  # before the book: no night will ever run for it
            return f"{pick}; no night can run for {day}, which is before the first {missing} drop ({book[0]})"
        then = rebuild if later else f"`riskline run --as-of {day}`"
        step = (f"its {missing} landing drop has not arrived, so no night can run for it yet: "
                + drops.undelivered_hint(root, missing, day, then=then))
    elif not later:  # a run retrains by default, so it needs no champion yet
        step = f"run that night with `riskline run --as-of {day}`"
    elif ModelRegistry(root).champion_on(day) is None:  # a rebuild scores with the champion of each night
        step = (f"nights after it already ran ({later[0]}..{later[-1]}), so it runs as a rebuild of them all, in "
                f"order; a rebuild scores each night with the champion serving on it and none serves on {day}: "
                f"train one first (`riskline train --as-of {day}`), then {rebuild}")
    else:
        step = (f"nights after it already ran ({later[0]}..{later[-1]}), so it runs as a rebuild of them all, in "
                f"order: {rebuild}")
    return f"{pick}; to publish {day} as well: {step}" if first else step


def first_night_step(root: Path) -> str:
    """How a lake with nothing published gets its first night: ingest the history, run the newest drop."""
    delivered = zones.landing_dates(root, DATASETS[0])
    if not delivered:
        return (f"no {DATASETS[0]} drop has ever landed under {root} either: check the data root "
                "(--data-root / RISKLINE_DATA_ROOT), or generate a book with `riskline generate`")
    first, newest = delivered[0], delivered[-1]
    history = (f"ingest the history (`riskline ingest --from-date {first} --to-date {newest - dt.timedelta(days=1)}`), "
               "then " if newest > first else "")
    return f"{history}run the newest delivered date: `riskline run --as-of {newest}` (like `make demo`)"


def missing_history_step(exc: IncompleteHistoryError, then: str) -> str:
    """The next step for a night whose history lacks curated dates: ingest exactly those (the error knows
    them all), ``then`` (how to go on once they are in)."""
    command = exc.ingest_command()
    if command is None:  # shards not complete: no date is missing, the night's stages redo them whole
        return f"rerun the night (every stage replaces its partitions whole), {then}"
    dates = "date" if len(exc.missing) == 1 else f"dates ({len(exc.missing)} missing)"
    return f"ingest the missing {dates} first: `{command}`, {then}"


def stopped_night(exc: Exception, day: dt.date, last: dt.date, force_chain: bool, retrain: bool) -> str:
    """``<what> -> <next step>, then <resume>`` for night ``day`` of a rebuild to ``last`` that failed on ``exc``.

    The stage errors keep their own words for what happened; the step is theirs where they carry one (an
    ingest error's hint), else chosen by kind here: a rebuild has no --model-version and trains only with
    --retrain, so the model steps differ from `riskline run`'s.
    """
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.fit import InsufficientHistoryError
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import NoChampionError, RegistryError

    same = f"riskline rebuild --from {day} --to {last}" + (" --force-chain" if force_chain else "")
    resume = same + (" --retrain" if retrain else "")  # the same nights again, from this one
    then = f"then `{resume}`"
    text = " ".join(str(exc).split())
    if isinstance(exc, PublishIncompleteError):  # after the journal: some of the night is out, a rerun completes it
        return f"{text}; the rebuild reruns it: `{resume}`"
    if isinstance(exc, IngestError):  # one line `<where>: <what> -> <next step>` (pipelines/errors.py), its own
        step = "" if " -> " in text else " -> fix or redeliver that landing drop (upstream)"
        return f"{text}{step}; then resume: `{resume}`"
    what = f"{type(exc).__name__}: {text}"
    promote = (f"promote a reviewed version from {day} (`riskline model promote V --effective-from {day} "
               "--reason ...`; `riskline model list` shows them)")
    if isinstance(exc, NoChampionError) and not retrain:  # scoring found no champion serving on the date
        return (f"{what} -> train one for it (`riskline train --as-of {day}`) or {promote}, {then}; or rebuild "
                f"with --retrain (every night of it retrains): `{same} --retrain`")
    if isinstance(exc, NoChampionError):  # with --retrain: tonight's challenger failed the gate, no champion yet
        return f"{what} -> after a model-risk review, {promote}, {then}"
    if isinstance(exc, RegistryError):
        return f"{what} -> check the model registry (`riskline model list`; DATA_ROOT/registry), {then}"
    if isinstance(exc, LeakageSuspectedError | InsufficientHistoryError):  # only a --retrain rebuild trains
        return f"{what} -> rebuild without --retrain (each night scores with the champion serving on it): `{same}`"
    if isinstance(exc, IncompleteHistoryError):  # the features need every curated date up to the night
        return f"{what} -> {missing_history_step(exc, then)}"
    if isinstance(exc, PublishError):
        return (f"{what} -> nothing of {day} was published: its outputs broke their own contract, a bug in "
                f"riskline rather than upstream data; report this line to its owners (RISKLINE_TRACEBACK=1 shows "
                f"the traceback) and, once fixed, resume: `{resume}`")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what} -> free space on the data root's file system (every write is atomic), {then}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{what} -> make the data root writable for this user, {then}"
    return (f"{what} -> not a data problem: rerun with RISKLINE_TRACEBACK=1 to see where it failed, fix the "
            f"cause, {then} (every night replaces its partitions whole)")
