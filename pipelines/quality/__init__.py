"""Data quality: Great Expectations suites built from the contracts (gx_suites) and running them (validate)."""
