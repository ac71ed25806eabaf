"""Ray Tune glue: the search driver, the trial trainable, its Ray Data feed, Optuna and ASHA."""
