"""A candidate limit policy for the what-if (``riskline simulate --policy candidate.yaml``), validated as the live one.

The candidate is YAML holding a ``policy:`` section in ``riskline.yaml``'s shape; a bare section (the keys of
``policy:`` at the top level) is accepted too. Either way it is the *whole* section, explanations included, and
it goes through the very model that loads ``riskline.yaml`` (:class:`~pipelines.config.decisions.PolicyConfig`,
every field bound and cross-field check), so a candidate the what-if accepts is one the nightly run would load.
Other sections of ``riskline.yaml`` (product bounds, collections) are not part of a candidate and are refused by
name: the what-if changes the limit policy only, and a silently ignored ``product:`` would mislead.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines.config.decisions import PolicyConfig, limit_step_error
from pipelines.config.section import ConfigError
from pipelines.config.source import config_path

POLICY_KEY = "policy"
WHATIF_SUFFIX = "-whatif"  # the default candidate's version: the live one, marked as a what-if


class CandidateError(ConfigError):
    """The candidate policy is not valid YAML, not a policy section, or breaks a rule of the live policy."""


def _one_line(err: dict[str, Any]) -> str:
    """One pydantic error as ``policy.<key>: <problem>`` (a cross-field check names its keys in its message)."""
    message = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"]:  # a cross-field check of the whole section: its message names the keys
        return message
    return f"{'.'.join(str(p) for p in (POLICY_KEY, *err['loc']))}: {message}"


def parse_candidate_policy(text: str, source: str = "candidate",
                           product_limits_cny: tuple[int, int] | None = None) -> PolicyConfig:
    """The candidate policy in ``text`` (YAML), validated by :class:`PolicyConfig` and, given the product's
    ``(min, max)`` limits, by the check the live config makes across sections (:func:`limit_step_error`).

    Raises:
        CandidateError: one line naming ``source``, the key and the problem (the first problem when there are
            several; fix it and the next one is named).
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CandidateError(f"{source} is not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict) or not raw:
        raise CandidateError(f"{source} must hold a mapping: a `policy:` section as in riskline.yaml (or its keys)")
    if POLICY_KEY in raw:
        others = sorted(str(k) for k in raw if k != POLICY_KEY)
        if others:
            raise CandidateError(f"{source} holds sections other than policy: {others}; a candidate changes the limit "
                                 "policy only (remove them)")
        raw = raw[POLICY_KEY]
        if not isinstance(raw, dict):
            raise CandidateError(f"{source}: policy must be a mapping, got {type(raw).__name__}")
    try:
        policy = PolicyConfig(**{str(k): v for k, v in raw.items()})
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CandidateError(f"{source} is invalid: {_one_line(errors[0])}{more}") from None
    problem = limit_step_error(policy.limit_step_cny, *product_limits_cny) if product_limits_cny else None
    if problem:
        raise CandidateError(f"{source} is invalid: {problem}")
    return policy


def candidate_yaml(policy: PolicyConfig, version: str | None = None) -> str:
    """``policy`` as a candidate file (``policy:`` section, riskline.yaml's keys and order) under ``version``
    (default: the policy's own version + ``-whatif``): what a new what-if starts from, changing nothing."""
    section = policy.model_dump(mode="json")
    section["version"] = version if version is not None else f"{policy.version}{WHATIF_SUFFIX}"
    return yaml.safe_dump({POLICY_KEY: section}, sort_keys=False, allow_unicode=True, width=110)


def live_candidate_text(path: str | os.PathLike[str] | None = None) -> str:
    """The live config file's ``policy:`` section as a candidate under version ``<live>-whatif``, read as YAML
    only (no validation, no settings import: the what-if DAG's param default, built when the DAG is parsed; the
    run validates it like any candidate). Simulated, it changes nothing."""
    raw = yaml.safe_load(config_path(path).read_bytes()) or {}
    section = raw.get(POLICY_KEY) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise CandidateError(f"config file {config_path(path)} holds no policy section")
    section = {**section, "version": f"{section.get('version', '')}{WHATIF_SUFFIX}"}
    return yaml.safe_dump({POLICY_KEY: section}, sort_keys=False, allow_unicode=True, width=110)
