"""Data contracts: the landing datasets upstream delivers (landing) and the outputs riskline publishes (outputs).

Declarations only (columns, dtypes, keys, ranges); the config validates its keys against them, so they sit
below the config layer."""
