"""MLflow: runs of searches and trials, the registered spotter, its pyfunc model, scrubbing."""
