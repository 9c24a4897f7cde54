"""The words a model reads before calling anything: server instructions, tool descriptions, the prompt.

Descriptions are prompts: each says what the tool returns, when another tool fits better, and when to
stop. They are kept here, apart from the code, so wording can change without touching behaviour.
"""

INSTRUCTIONS = """\
Watch and triage Retab workflow experiment runs (a document-extraction block run over a set of
documents, scored against expected values).
- get_experiment_run: the current state of a run. Cheap; use it first.
- wait_for_run / wait_for_runs: block up to ~45 s until one run / several runs finish. If not finished,
  call again only if the result is needed now; stop after ~15 min or when two calls show no new documents.
- triage_experiment_run: why a finished run scored or failed as it did, in one call.
- list_experiment_runs, list_experiment_run_results, get_experiment_run_metrics: the details behind it.
A run that ended in `error` or `cancelled` is a normal answer, not a failure of the tool: read `error`
or `cancel_reason`, and do not wait on it again."""

GET_RUN = """\
Get the current state of a Retab experiment run: status, score, documents done, errors, timing.
For a failed run it includes the error and the end of the stack trace. Returns at once; to wait for an
unfinished run to end, call wait_for_run."""

WAIT_RUN = """\
Wait until a Retab experiment run is completed, error or cancelled, or until timeout_s passes.
Finished: the run summary (status, score, documents, error) with timed_out=false. Not finished in time:
a normal result with finished=false, timed_out=true and only what changes (status, documents done, ETA);
call wait_for_run again to keep waiting (each call resumes the polling where the last left off), and
stop after ~15 min or when two calls show no new documents. Sends progress (documents completed) when
the caller asks for it."""

WAIT_RUNS = """\
Wait on up to 20 Retab experiment runs at once, until all of them finish (mode='all') or the first one
does (mode='any'), or until timeout_s passes. Returns one compact row per run (status, score,
documents, error). A run that cannot be read gets its reason in its row; the others are still waited
on. Progress is the sum of documents completed. Call again with the unfinished ids to keep waiting."""

LIST_RUNS = """\
List Retab experiment runs, newest first, one compact row each (id, status, score, documents, errors,
created). Filter by experiment_id, workflow_id and status. Returns next_cursor when there are more:
pass it as cursor to get the next page. Use it to find a run id, or the run before a given one."""

LIST_RESULTS = """\
List a run's documents, one row each: document id, filename, status, error message (cut short) and
duration. status='error' shows only the failed documents. Returns next_cursor when there are more.
For scores per document, use get_experiment_run_metrics."""

GET_METRICS = """\
Get a run's scores: the score, the prior run's score and the difference, and the lowest-scoring items
of a view. view='summary': documents of the run; 'by_document' (document_id): fields of a document;
'by_target' (target_path): documents for one field; 'votes' (document_id, target_path): the consensus
votes. Stale or missing metrics are answered with a warning that gives Retab's reasons."""

TRIAGE = """\
Explain why a Retab experiment run ended as it did, in one call (under 4 KB): the verdict, the run
summary, the score against the prior run, failed documents grouped by error, the lowest-scoring
documents and fields, metrics staleness, and the next calls worth making. Works on an unfinished run
too (a report so far)."""

CANCEL = """\
Cancel a Retab experiment run that is still pending, queued or running. This stops the run for
everyone: only call it when the user asked for it. Cancelling a cancelled run changes nothing; a run
that already completed or failed cannot be cancelled (the answer says so)."""

TRIAGE_PROMPT = """\
Triage the Retab experiment run {run_id}.
1. Call get_experiment_run(run_id="{run_id}"). If it is not finished, call wait_for_run(run_id="{run_id}")
   until it is (stop after ~15 min, or when two calls bring no new documents, and say so).
2. Call triage_experiment_run(run_id="{run_id}") and read its verdict.
3. If documents failed, call list_experiment_run_results(run_id="{run_id}", status="error") to see them
   all; group them by cause.
4. If the score dropped against the prior run, call get_experiment_run_metrics with view="by_document"
   for the worst document, then view="by_target" for its worst field, to see where it is wrong.
5. Answer in a few lines: how the run ended, the score and its change, the main causes with the
   documents they hit, and the one change most likely to help."""
