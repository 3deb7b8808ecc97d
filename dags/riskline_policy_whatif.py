"""## riskline policy what-if

Re-decides a **published** night with a **candidate limit policy** and the night's own published scores, and
writes a page comparing it with the live decision: the action x action swap matrix, exposure and expected-loss
change by grade, the customers affected, sample explanations (zh/en) and the accounts whose outcome would become
harsher. The same as `riskline simulate --policy candidate.yaml --as-of D` (docs/policy-whatif.md).

**Manual only** (no schedule): press *Trigger* and edit the params.

* `candidate_policy`: YAML, a `policy:` section as in riskline.yaml (or its bare keys), the whole section. The
  default is the live policy under version `<live>-whatif`: triggered as is, the run succeeds with a page showing
  no change at all. Change a number (e.g. `increase.max_grade`, `decrease.factor_by_grade`) and the version. It
  is validated by the same rules as the live policy; an invalid one fails the task with one line naming the key.
* `as_of`: the published business date to re-decide (YYYY-MM-DD); empty = the newest published night.

Any other param key fails the run (a misspelled `candidate_policy` must not silently simulate the default). A
refusal fails the task with one line and a `NEXT STEP:` line saying what to do in the UI.

**Output:** `DATA_ROOT/simulations/<candidate version>/as_of_date=D/whatif.html`, with the candidate's limits
(`limits.parquet`, the published shape) and the per-account comparison (`comparison.parquet`); the task's return
value names the page. Nothing a real run reads is touched: no output, manifest, lock, registry or chain write.
The task refuses a night the live policy does not reproduce exactly (it names what differs).

This file only wires the task; all logic lives in the `pipelines` package.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from pipelines.config.candidate import live_candidate_text


@dag(
    dag_id="riskline_policy_whatif",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["riskline", "credit-risk", "policy", "what-if"],
    default_args={"owner": "credit-risk-policy", "retries": 0},  # a refusal or a bad candidate fails the same again
    doc_md=__doc__,
    params={
        "candidate_policy": Param(
            # the live riskline.yaml policy, read when the file is parsed, so the default always matches it
            live_candidate_text(), type="string", format="multiline", minLength=1,
            description="The candidate limit policy, YAML (a `policy:` section as in riskline.yaml). Default: the "
                        "live policy as version <live>-whatif, which changes nothing.",
        ),
        "as_of": Param(
            None, type=["null", "string"], format="date",
            description="Published business date to re-decide (YYYY-MM-DD); empty = the newest published night.",
        ),
    },
)
def riskline_policy_whatif() -> None:
    @task
    def simulate_candidate(params: dict | None = None) -> dict:
        from pipelines.entry.simulate import run_whatif_dag

        # unknown keys (a typo in the trigger JSON) fail the run: they would otherwise simulate the default
        return run_whatif_dag(dict(params or {}))

    simulate_candidate()


riskline_policy_whatif()
