"""Search: Ray Tune trainable and tuner, MLflow tracking, model registry, CLI."""
