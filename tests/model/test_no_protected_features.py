"""Protected attributes (and region) never become features, by name or by influence."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.contracts.landing import CONTRACT, PROTECTED_ATTRIBUTES
from pipelines.domain.feature_dictionary import FEATURE_NAMES, FEATURES
from pipelines.domain.features import build_features
from pipelines.domain.ledger import build_ledger

AS_OF = dt.date(2024, 6, 30)
UTC = dt.timezone.utc
# region is not protected by the contract but is a proxy for ethnicity and hukou: never a feature either
FORBIDDEN = sorted(PROTECTED_ATTRIBUTES | {"region"})
EXTRA_ATTRIBUTES = {"age": pl.Int32(), "ethnicity": pl.String(), "religion": pl.String()}


def _book(gender: str, marital: str, region: str, age: int, ethnicity: str) -> dict[str, pl.LazyFrame]:
    acc_schema = {**CONTRACT["accounts"].curated_schema(), "dt": pl.Date(), **EXTRA_ATTRIBUTES}
    accounts = pl.LazyFrame(
        [
            (acc, dt.date(2023, 2, 1), 150_000, "active", 8_000_000, region, gender, marital, day, age, ethnicity, "x")
            for acc in ("A1", "A2")
            for day in (AS_OF, AS_OF - dt.timedelta(days=30))
        ],
        schema=acc_schema,
        orient="row",
    )
    behaviour = pl.LazyFrame(
        [
            ("e1", "A1", dt.datetime(2024, 6, 29, 3, tzinfo=UTC), "purchase", 5_000, "app", dt.date(2024, 6, 29)),
            ("e2", "A2", dt.datetime(2024, 6, 20, 3, tzinfo=UTC), "cash_draw", 20_000, "app", dt.date(2024, 6, 20)),
        ],
        schema={**CONTRACT["behaviour"].curated_schema(), "dt": pl.Date()},
        orient="row",
    )
    installments = pl.LazyFrame(
        [("i1", "L1", "A2", 1, dt.date(2024, 6, 25), 20_000, 300, dt.date(2024, 6, 20))],
        schema={**CONTRACT["installments"].curated_schema(), "dt": pl.Date()},
        orient="row",
    )
    payments = pl.LazyFrame(
        schema={**CONTRACT["payments"].curated_schema(), "dt": pl.Date()},
    )
    return {"accounts": accounts, "behaviour": behaviour, "installments": installments, "payments": payments}


def _features(**attrs) -> pl.DataFrame:
    book = _book(**attrs)
    ledger = build_ledger(book["installments"], book["payments"], AS_OF)
    return build_features(book["accounts"], book["behaviour"], ledger, AS_OF)


def _mentions_forbidden(name: str) -> list[str]:
    # whole tokens only ("usage" is not "age"); multi-word attributes match as a phrase
    parts = set(name.lower().split("_"))
    return [attr for attr in FORBIDDEN if attr in parts or ("_" in attr and attr in name.lower())]


def test_dictionary_names_no_protected_attribute():
    for feat in FEATURES:
        assert not _mentions_forbidden(feat.name), feat.name
        for text in (feat.meaning, feat.high_en, feat.low_en):
            assert not any(attr in text.lower().split() for attr in FORBIDDEN), (feat.name, text)


def test_feature_frame_has_no_protected_column():
    frame = _features(gender="f", marital="single", region="r1", age=30, ethnicity="e1")
    assert not [c for c in frame.columns if _mentions_forbidden(c)]
    assert set(frame.columns) - {"account_id", "as_of_date"} == set(FEATURE_NAMES)


@pytest.mark.parametrize(
    "changed",
    [
        {"gender": "m"},
        {"marital": "married"},
        {"region": "r9"},
        {"age": 71},
        {"ethnicity": "e2"},
    ],
)
def test_features_do_not_move_when_a_protected_attribute_changes(changed):
    base = {"gender": "f", "marital": "single", "region": "r1", "age": 30, "ethnicity": "e1"}
    assert_frame_equal(_features(**{**base, **changed}), _features(**base))
