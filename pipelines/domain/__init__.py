"""The credit-risk domain, pure: frames and typed config sections in, frames out (no paths, no clock).

ledger, features, labels, policy (limit decisions), collections, hardship, explanations (reason texts),
pending_payments, feature_dictionary, sharding (the stable account hash)."""
