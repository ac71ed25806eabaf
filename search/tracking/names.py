"""The MLflow names avspot writes and reads (docs/contracts.md, MLflow section), in one place.

Runs: one parent run per search (``avspot.role`` = search), one child run per trial (``trial``),
nested through ``mlflow.parentRunId``. Registered model ``avspot-spotter`` with the aliases
``challenger`` (best trial of the latest search) and ``champion`` (promoted).
"""

from __future__ import annotations

# Run tags (the UI shows them; the registry and the report filter on them).
TAG_ROLE = "avspot.role"  # "search" (parent) | "trial" (child)
TAG_SEARCH = "avspot.search"  # experiment (search) name
TAG_FINGERPRINT = "avspot.data_fingerprint"
TAG_DATA_SOURCE = "avspot.data_source"
TAG_CODE_VERSION = "avspot.code_version"
TAG_TRIAL = "avspot.trial"  # Ray Tune trial name
TAG_TRIAL_ID = "avspot.trial_id"  # Ray Tune trial id
TAG_MODEL_URI = "avspot.model_uri"  # models:/<model_id> of a completed trial's best checkpoint
TAG_ERROR = "avspot.error"
TAG_EVAL_ERROR = "avspot.eval_error"
TAG_RESUMED = "avspot.resumed"
TAG_PARENT = "mlflow.parentRunId"

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

MODEL_ARTIFACT = "model"  # the logged model of a trial run (runs:/<id>/model)
DATASET_CONTEXT = "train+valid"  # mlflow.data.context of the table a run trained on

# Registry
MODEL_NAME = "avspot-spotter"
CHALLENGER = "challenger"
CHAMPION = "champion"
DEFAULT_METRIC = "val_average_map"
V_EXPERIMENT = "avspot.experiment"  # model version tags
V_SEARCH = "avspot.search"  # the search's parent run id
V_FINGERPRINT = "avspot.data_fingerprint"
V_METRIC = "avspot.metric"
V_METRIC_VALUE = "avspot.metric_value"
V_ROLE = "avspot.registered_as"
