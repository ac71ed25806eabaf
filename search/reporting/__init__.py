"""``avspot report``: the seed study's tables and figures regenerated from MLflow runs."""
