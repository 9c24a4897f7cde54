"""The published names of the tools: hosts, agents and scripts call them, so each is written once, here.

Views quote them in their hints ("call wait_for_run …"); this module imports nothing, so that views can
use it without reaching up into the tools layer (the import contract in pyproject.toml allows exactly this).
"""

GET_RUN = "get_experiment_run"
WAIT_RUN = "wait_for_run"
WAIT_RUNS = "wait_for_runs"
LIST_RUNS = "list_experiment_runs"
LIST_RESULTS = "list_experiment_run_results"
GET_METRICS = "get_experiment_run_metrics"
TRIAGE = "triage_experiment_run"
CANCEL = "cancel_experiment_run"
COMPARE = "compare_experiment_runs"
START = "start_experiment_run"
LIST_EXPERIMENTS = "list_experiments"
GET_EXPERIMENT = "get_experiment"
DOCUMENT_SCORES = "get_run_document_scores"  # for the run view alone: listed only to hosts that render it
# Every kind of run: experiment, workflow and eval runs
GET_RUN_ANY = "get_run"
LIST_RUNS_ANY = "list_runs"
TRIAGE_RUN = "triage_run"
LIST_EVAL_RESULTS = "list_eval_results"
COMPARE_EVALS = "compare_eval_runs"
START_EVALS = "start_eval_run"

WAITS = frozenset({WAIT_RUN, WAIT_RUNS})  # bounded by their own timeout_s, not the call deadline
