"""riskline: a nightly credit-risk pipeline for a consumer credit-line book.

Stages (one module each): ``generate`` (synthetic landing data), ``ingest`` (landing -> curated),
``lake`` (the only module that knows paths and how to publish atomically), ``contract`` (the landing
data contract), ``config`` (the typed config), ``cli`` (the ``riskline`` command).
"""
