"""The night's stages: they read through the store, call the domain and model, and write through the store.

ingest (landing -> curated), night (the whole night, stage by stage), shards (per-account stages shard by shard)."""
