"""Settings: the typed config loaded from riskline.yaml (settings) and the PD model definition (models/*.yaml)."""
