-- Peer: the behaviour-window features as DuckDB SQL over the same curated Parquet files.
-- benchmarks/peers/run_peers.py defines, before running this file:
--   behaviour(account_id, event_type, amount_cents, dt)  the curated behaviour files of the last 180 days
--   book(account_id)                                      active/frozen accounts of the snapshot of D
--   getvariable('as_of')                                  the as-of date D
-- Same definitions and types as pipelines.features.aggregate_behaviour joined to the book: a window of
-- w days holds ages 0 .. w-1; money is BIGINT cents, counts INTEGER, ratios DOUBLE (NULL when undefined).
WITH events AS (
    SELECT account_id, event_type, COALESCE(amount_cents, 0) AS cents,
           date_diff('day', dt, getvariable('as_of')) AS age
    FROM behaviour
    WHERE dt <= getvariable('as_of') AND date_diff('day', dt, getvariable('as_of')) < 180
),
per_account AS (
    SELECT account_id,
        SUM(cents) FILTER (WHERE event_type = 'purchase' AND age < 7)   AS spend_7d,
        SUM(cents) FILTER (WHERE event_type = 'purchase' AND age < 30)  AS spend_30d,
        SUM(cents) FILTER (WHERE event_type = 'purchase' AND age < 90)  AS spend_90d,
        SUM(cents) FILTER (WHERE event_type = 'purchase' AND age < 180) AS spend_180d,
        COUNT(*) FILTER (WHERE event_type = 'purchase' AND age < 7)     AS purchases_7d,
        COUNT(*) FILTER (WHERE event_type = 'purchase' AND age < 30)    AS purchases_30d,
        COUNT(*) FILTER (WHERE event_type = 'purchase' AND age < 90)    AS purchases_90d,
        COUNT(*) FILTER (WHERE event_type = 'purchase' AND age < 180)   AS purchases_180d,
        COUNT(*) FILTER (WHERE event_type = 'cash_draw' AND age < 7)    AS draws_7d,
        COUNT(*) FILTER (WHERE event_type = 'cash_draw' AND age < 30)   AS draws_30d,
        COUNT(*) FILTER (WHERE event_type = 'cash_draw' AND age < 90)   AS draws_90d,
        COUNT(*) FILTER (WHERE event_type = 'cash_draw' AND age < 180)  AS draws_180d,
        SUM(cents) FILTER (WHERE event_type = 'cash_draw' AND age < 7)   AS draw_cents_7d,
        SUM(cents) FILTER (WHERE event_type = 'cash_draw' AND age < 30)  AS draw_cents_30d,
        SUM(cents) FILTER (WHERE event_type = 'cash_draw' AND age < 90)  AS draw_cents_90d,
        SUM(cents) FILTER (WHERE event_type = 'cash_draw' AND age < 180) AS draw_cents_180d,
        COUNT(*) FILTER (WHERE event_type = 'login' AND age < 7)        AS logins_7d,
        COUNT(*) FILTER (WHERE event_type = 'login' AND age < 30)       AS logins_30d,
        COUNT(*) FILTER (WHERE event_type = 'login' AND age < 90)       AS logins_90d,
        COUNT(*) FILTER (WHERE event_type = 'login' AND age < 180)      AS logins_180d,
        SUM(cents) FILTER (WHERE event_type = 'refund' AND age < 30)    AS refund_30d,
        SUM(cents) FILTER (WHERE event_type = 'refund' AND age < 90)    AS refund_90d,
        SUM(cents) FILTER (WHERE event_type = 'refund' AND age < 180)   AS refund_180d,
        SUM(cents) FILTER (WHERE event_type = 'purchase' AND age >= 30 AND age < 90) AS spend_prior
    FROM events
    GROUP BY account_id
),
filled AS (
    SELECT b.account_id,
        CAST(COALESCE(spend_7d, 0) AS BIGINT) AS spend_7d_cents,
        CAST(COALESCE(purchases_7d, 0) AS INTEGER) AS purchase_count_7d,
        CAST(COALESCE(draws_7d, 0) AS INTEGER) AS cash_draw_count_7d,
        CAST(COALESCE(draw_cents_7d, 0) AS BIGINT) AS cash_draw_amount_7d_cents,
        CAST(COALESCE(logins_7d, 0) AS INTEGER) AS login_count_7d,
        CAST(COALESCE(spend_30d, 0) AS BIGINT) AS spend_30d_cents,
        CAST(COALESCE(purchases_30d, 0) AS INTEGER) AS purchase_count_30d,
        CAST(COALESCE(draws_30d, 0) AS INTEGER) AS cash_draw_count_30d,
        CAST(COALESCE(draw_cents_30d, 0) AS BIGINT) AS cash_draw_amount_30d_cents,
        CAST(COALESCE(logins_30d, 0) AS INTEGER) AS login_count_30d,
        CAST(COALESCE(spend_90d, 0) AS BIGINT) AS spend_90d_cents,
        CAST(COALESCE(purchases_90d, 0) AS INTEGER) AS purchase_count_90d,
        CAST(COALESCE(draws_90d, 0) AS INTEGER) AS cash_draw_count_90d,
        CAST(COALESCE(draw_cents_90d, 0) AS BIGINT) AS cash_draw_amount_90d_cents,
        CAST(COALESCE(logins_90d, 0) AS INTEGER) AS login_count_90d,
        CAST(COALESCE(spend_180d, 0) AS BIGINT) AS spend_180d_cents,
        CAST(COALESCE(purchases_180d, 0) AS INTEGER) AS purchase_count_180d,
        CAST(COALESCE(draws_180d, 0) AS INTEGER) AS cash_draw_count_180d,
        CAST(COALESCE(draw_cents_180d, 0) AS BIGINT) AS cash_draw_amount_180d_cents,
        CAST(COALESCE(logins_180d, 0) AS INTEGER) AS login_count_180d,
        CAST(COALESCE(refund_30d, 0) AS BIGINT) AS refund_30d,
        CAST(COALESCE(refund_90d, 0) AS BIGINT) AS refund_90d,
        CAST(COALESCE(refund_180d, 0) AS BIGINT) AS refund_180d,
        CAST(COALESCE(spend_prior, 0) AS BIGINT) AS spend_prior
    FROM book b
    LEFT JOIN per_account p USING (account_id)
)
SELECT * EXCLUDE (refund_30d, refund_90d, refund_180d, spend_prior),
    CASE WHEN spend_30d_cents > 0 THEN CAST(refund_30d AS DOUBLE) / CAST(spend_30d_cents AS DOUBLE) END
        AS refund_ratio_30d,
    CASE WHEN spend_90d_cents > 0 THEN CAST(refund_90d AS DOUBLE) / CAST(spend_90d_cents AS DOUBLE) END
        AS refund_ratio_90d,
    CASE WHEN spend_180d_cents > 0 THEN CAST(refund_180d AS DOUBLE) / CAST(spend_180d_cents AS DOUBLE) END
        AS refund_ratio_180d,
    -- ratio of daily averages (last 30 days vs the 60 before), so a flat spender reads 1.0
    CASE WHEN spend_prior > 0 THEN CAST(spend_30d_cents * 60 AS DOUBLE) / CAST(spend_prior * 30 AS DOUBLE) END
        AS spend_trend_30d
FROM filled
ORDER BY account_id
