"""Model families. Each module registers its estimators with :func:`deepatlas.registry.register_model`;
the registry imports every module here on first use."""
