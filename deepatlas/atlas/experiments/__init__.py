"""Atlas experiments, one module per family; each registers with ``@experiment(CLAIM_ID)``."""
