"""The feature dictionary: the one place that says what each model feature means.

For every column :func:`pipelines.domain.features.build_features` produces (besides the keys ``account_id`` and
``as_of_date``): its meaning, window (days, or None), unit, the direction of risk, and the customer-facing
phrases in English and Chinese that reason codes use when the feature is high or low. The model config
(monotone constraints, feature order), the reason codes and the report read it from here;
``tests/unit/test_features.py`` asserts that it covers the feature columns exactly.

``monotone`` is the constraint handed to the model: +1 where PD must not fall as the feature rises (DPD,
overdue amount, missed instalments, utilization: a lender cannot explain a lower PD for a customer who
is more behind), -1 where PD must not rise as it rises (on-time repayment), 0 where either direction can
be legitimate (spend, logins, limit changes...).

Windows are fixed here rather than in riskline.yaml: they define the feature set itself, which a trained
model is bound to, so changing one is a new model version, not a tuning knob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["cents", "count", "ratio", "days", "months", "flag"]
Language = Literal["en", "zh"]

KEY_COLUMNS: tuple[str, str] = ("account_id", "as_of_date")

BEHAVIOUR_WINDOWS: tuple[int, ...] = (7, 30, 90, 180)
RATIO_WINDOWS: tuple[int, ...] = (30, 90, 180)  # refunds, repayments: too sparse over 7 days
DPD_WINDOWS: tuple[int, ...] = (30, 90, 180)
LIMIT_WINDOWS: tuple[int, ...] = (30, 90, 180)
ON_TIME_WINDOWS: tuple[int, ...] = (90, 180)  # monthly instalments: 30 days holds one or none
TREND_RECENT_DAYS = 30
TREND_PRIOR_DAYS = 60
HISTORY_DAYS = max(BEHAVIOUR_WINDOWS)


@dataclass(frozen=True)
class Feature:
    """One model feature.

    ``high_*`` / ``low_*`` are the phrases a reason code shows when the customer's value is high / low
    (the direction that drove their score), in English and Chinese.
    """

    name: str
    meaning: str
    window_days: int | None
    unit: Unit
    monotone: Literal[-1, 0, 1]
    high_en: str
    high_zh: str
    low_en: str
    low_zh: str
    # May this feature be an adverse-action reason? Only what describes the customer's own behaviour or
    # standing. Not the lender's own actions (the line's size, a freeze, a limit change): "your line was
    # cut because your line was cut" tells a customer nothing they can check or change.
    reason: bool = True

    def phrase(self, language: Language, high: bool) -> str:
        if language == "en":
            return self.high_en if high else self.low_en
        if language == "zh":
            return self.high_zh if high else self.low_zh
        raise ValueError(f"unknown language {language!r}; want 'en' or 'zh'")

    @property
    def risk_phrase_en(self) -> str:
        """The English phrase for the direction that raises risk (high unless monotone is -1)."""
        return self.phrase("en", high=self.monotone >= 0)

    @property
    def risk_phrase_zh(self) -> str:
        return self.phrase("zh", high=self.monotone >= 0)


def _windowed(
    stem: str,
    windows: tuple[int, ...],
    meaning: str,
    unit: Unit,
    monotone: Literal[-1, 0, 1],
    high: tuple[str, str],
    low: tuple[str, str],
    suffix: str = "",
    reason: bool = True,
) -> list[Feature]:
    return [
        Feature(
            name=f"{stem}_{w}d{suffix}",
            meaning=meaning.format(w=w),
            window_days=w,
            unit=unit,
            monotone=monotone,
            high_en=high[0].format(w=w),
            high_zh=high[1].format(w=w),
            low_en=low[0].format(w=w),
            low_zh=low[1].format(w=w),
            reason=reason,
        )
        for w in windows
    ]


def _build() -> tuple[Feature, ...]:
    f: list[Feature] = []
    # --- behaviour -------------------------------------------------------------------------------
    f += _windowed(
        "spend", BEHAVIOUR_WINDOWS, "Sum of purchase amounts in the last {w} days.", "cents", 0,
        ("you spent a lot on purchases in the last {w} days", "近{w}天消费金额较高"),
        ("you spent little on purchases in the last {w} days", "近{w}天消费金额较低"),
        suffix="_cents",
    )
    f += _windowed(
        "purchase_count", BEHAVIOUR_WINDOWS, "Number of purchases in the last {w} days.", "count", 0,
        ("you made many purchases in the last {w} days", "近{w}天消费笔数较多"),
        ("you made few purchases in the last {w} days", "近{w}天消费笔数较少"),
    )
    f += _windowed(
        "cash_draw_count", BEHAVIOUR_WINDOWS, "Number of cash draws in the last {w} days.", "count", 0,
        ("you drew cash often in the last {w} days", "近{w}天取现次数较多"),
        ("you rarely drew cash in the last {w} days", "近{w}天取现次数较少"),
    )
    f += _windowed(
        "cash_draw_amount", BEHAVIOUR_WINDOWS, "Sum of cash draw amounts in the last {w} days.", "cents", 0,
        ("you drew a large amount of cash in the last {w} days", "近{w}天取现金额较高"),
        ("you drew little cash in the last {w} days", "近{w}天取现金额较低"),
        suffix="_cents",
    )
    f += _windowed(
        "login_count", BEHAVIOUR_WINDOWS, "Number of logins in the last {w} days.", "count", 0,
        ("you logged in often in the last {w} days", "近{w}天登录次数较多"),
        ("you seldom logged in in the last {w} days", "近{w}天登录次数较少"),
    )
    f += _windowed(
        "refund_ratio", RATIO_WINDOWS,
        "Refund amount / purchase amount in the last {w} days (null without purchases).", "ratio", 0,
        ("a large share of your purchases in the last {w} days was refunded", "近{w}天退款占消费比例较高"),
        ("little of your spending in the last {w} days was refunded", "近{w}天退款占消费比例较低"),
    )
    f.append(Feature(
        "spend_trend_30d",
        f"Daily average spend of the last {TREND_RECENT_DAYS} days / that of the {TREND_PRIOR_DAYS} days "
        "before (null when nothing was spent before).",
        TREND_RECENT_DAYS, "ratio", 0,
        "your spending rose in the last 30 days", "近30天消费较此前60天明显上升",
        "your spending fell in the last 30 days", "近30天消费较此前60天明显下降",
    ))
    # --- account snapshot --------------------------------------------------------------------------
    f.append(Feature(
        "credit_limit_cents", "Credit line at the close of the as-of date.", None, "cents", 0,
        "your credit line is large", "您的授信额度较高",
        "your credit line is small", "您的授信额度较低",
        reason=False,
    ))
    f.append(Feature(
        "is_frozen", "1 when the line is frozen (no new draws), 0 when active.", None, "flag", 0,
        "your credit line is frozen", "您的额度处于冻结状态",
        "your credit line is active", "您的额度状态正常",
        reason=False,
    ))
    f.append(Feature(
        "months_on_book", "Whole months since the line was opened.", None, "months", 0,
        "your account has been open a long time", "您的账户开立时间较长",
        "your account was opened recently", "您的账户开立时间较短",
    ))
    f += _windowed(
        "limit_change", LIMIT_WINDOWS,
        "Credit line today / credit line {w} days ago - 1 (null for lines younger than that).", "ratio", 0,
        ("your credit line was raised in the last {w} days", "近{w}天您的额度有所提升"),
        ("your credit line was cut in the last {w} days", "近{w}天您的额度有所下调"),
        suffix="_ratio",
        reason=False,
    )
    # --- repayment ledger -----------------------------------------------------------------------
    f.append(Feature(
        "outstanding_principal_cents", "Principal not yet repaid, over all loans.", None, "cents", 0,
        "you owe a large principal balance", "您的未还本金较高",
        "you owe little principal", "您的未还本金较低",
    ))
    f.append(Feature(
        "overdue_cents", "Amount due on or before the as-of date and not yet paid.", None, "cents", 1,
        "you have an overdue amount", "您有逾期未还金额",
        "you have no overdue amount", "您没有逾期未还金额",
    ))
    f.append(Feature(
        "dpd", "Days past due of the oldest unpaid instalment (0 when current).", None, "days", 1,
        "a repayment of yours is past due", "您有账单逾期未还",
        "your repayments are up to date", "您的账单均已按期还款",
    ))
    f.append(Feature(
        "missed_installments", "Instalments due on or before the as-of date and not fully paid.", None,
        "count", 1,
        "you have missed instalments", "您有到期未还清的分期",
        "you have no missed instalments", "您没有到期未还的分期",
    ))
    f += _windowed(
        "max_dpd", DPD_WINDOWS, "Worst DPD at the close of any of the last {w} days.", "days", 1,
        ("you were late on a repayment in the last {w} days", "近{w}天有逾期记录"),
        ("you were never late in the last {w} days", "近{w}天无逾期记录"),
    )
    f.append(Feature(
        "utilization", "Outstanding principal / credit line.", None, "ratio", 1,
        "you are using a large part of your credit line", "您的额度使用率较高",
        "you are using little of your credit line", "您的额度使用率较低",
    ))
    f.append(Feature(
        "utilization_trend_30d",
        "Utilization today minus utilization 30 days ago (null for lines younger than that).", 30,
        "ratio", 0,
        "your credit usage rose in the last 30 days", "近30天您的额度使用率上升",
        "your credit usage fell in the last 30 days", "近30天您的额度使用率下降",
    ))
    f += _windowed(
        "payment_to_due_ratio", RATIO_WINDOWS,
        "Money repaid in the last {w} days / instalment amounts falling due in them (null when none).",
        "ratio", 0,
        ("you repaid at least what fell due in the last {w} days", "近{w}天还款金额不低于应还金额"),
        ("you repaid less than what fell due in the last {w} days", "近{w}天还款金额低于应还金额"),
    )
    f += _windowed(
        "on_time_ratio", ON_TIME_WINDOWS,
        "Share of instalments due in the last {w} days that were paid in full by their due date.",
        "ratio", -1,
        ("you repaid your instalments on time in the last {w} days", "近{w}天按时还款比例较高"),
        ("some instalments in the last {w} days were not repaid on time", "近{w}天有分期未按时还款"),
    )
    f.append(Feature(
        "open_loans", "Loans with an instalment not fully paid.", None, "count", 0,
        "you have many loans open", "您的在贷笔数较多",
        "you have few loans open", "您的在贷笔数较少",
    ))
    f.append(Feature(
        "days_since_last_draw", "Days since the latest cash draw (null if never).", None, "days", 0,
        "you have not drawn cash for a long time", "您较长时间未取现",
        "you drew cash recently", "您近期有取现",
    ))
    f.append(Feature(
        "days_since_last_payment", "Days since the latest repayment (null if never).", None, "days", 0,
        "you have not made a repayment for a long time", "您较长时间未还款",
        "you made a repayment recently", "您近期有还款",
    ))
    return tuple(f)


FEATURES: tuple[Feature, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(feat.name for feat in FEATURES)
_BY_NAME: dict[str, Feature] = {feat.name: feat for feat in FEATURES}


def feature(name: str) -> Feature:
    """The dictionary entry of ``name``; KeyError names the unknown feature."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the feature dictionary") from None


def reason_features() -> frozenset[str]:
    """Features that may be named as a reason to a customer (``Feature.reason``)."""
    return frozenset(feat.name for feat in FEATURES if feat.reason)


def monotone_constraints() -> dict[str, int]:
    """``{feature: -1|0|+1}`` in dictionary order, for the model's monotone constraints."""
    return {feat.name: feat.monotone for feat in FEATURES}
