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
TAG_BUILD_ID = "avspot.build_id"  # sha256 of the installed code (tracking.wheel.build_id)
TAG_NODE_IP = "avspot.node_ip"  # the node a trial ran on (the last one, after a restart)
TAG_NODE_ID = "avspot.node_id"  # its Ray node id
TAG_TRIAL = "avspot.trial"  # Ray Tune trial name
TAG_TRIAL_ID = "avspot.trial_id"  # Ray Tune trial id
TAG_MODEL_URI = "avspot.model_uri"  # models:/<model_id> of a completed trial's best checkpoint
TAG_ERROR = "avspot.error"
TAG_EVAL_ERROR = "avspot.eval_error"
TAG_RESUMED = "avspot.resumed"
TAG_PARENT = "mlflow.parentRunId"
# Set on a run whose metrics waited through a tracking-server outage (tracking.client.Outbox)
TAG_TRACKING_OUTAGE_S = "avspot.tracking_outage_s"  # seconds its entries waited, all outages
TAG_TRACKING_BUFFERED = "avspot.tracking_buffered_max"  # most entries buffered at once
# Held while `promote` compares and moves an alias (tracking.registry): a registered model
PROMOTE_LOCK_SUFFIX = ".promote-lock"

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

# Compute accounting and inference cost (trial runs; cumulative ones at step = epoch)
M_TRIAL_WALL_S = "trial_wall_s"  # wall time since the trial started
M_CPU_CORE_S = "cpu_core_s"  # trial_wall_s x CPUs the trial held
M_GPU_S = "gpu_s"  # trial_wall_s x GPUs the trial held
M_N_PARAMS = "n_params"  # parameters of the evaluated (final) model
M_SPOT_S_PER_HALF = "spot_s_per_half"  # seconds of predict_half per validation half
# Totals of a search (parent run; reporting.compute)
M_TOTAL_WALL_H = "total_wall_h"  # sum of the trials' wall hours
M_TOTAL_CPU_CORE_H = "total_cpu_core_h"
M_TOTAL_GPU_H = "total_gpu_h"
M_TOTAL_TRIAL_EPOCHS = "total_trial_epochs"
M_GRID_WALL_H = "grid_estimate_wall_h"  # the full grid (or all trials to max_epochs) estimated
M_GRID_CPU_CORE_H = "grid_estimate_cpu_core_h"
M_GRID_GPU_H = "grid_estimate_gpu_h"
M_GRID_TRIAL_EPOCHS = "grid_estimate_trial_epochs"
M_SAVED_FRACTION = "saved_fraction"  # 1 - spent / estimate (CPU-core hours, else wall hours)
TAG_GRID_BASIS = "avspot.grid_estimate_basis"  # "grid: ..." or "tpe: ..." (how it was estimated)
ANALYSIS_DIR = "analysis"  # the parent run's analysis artifacts (reporting.analysis)

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
V_METRIC_SOURCE = "avspot.metric_source"  # the run metric the value is (full_<metric>, ...)
V_ROLE = "avspot.registered_as"
