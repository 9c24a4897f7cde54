"""The words a model reads before calling anything: server instructions, tool descriptions, the prompt.

Descriptions are prompts: each says what the tool returns, when another tool fits better, and when to
stop. They are kept here, apart from the code, so wording can change without touching behaviour.

Hosts show descriptions as written, so a line break there is a break the model sees: `flow()` joins the
wrapped lines of the source into whole paragraphs, and keeps only the breaks before a list item.

The score of a Retab experiment is the agreement between the block's consensus passes over each
document, not accuracy against labels (there are none): every word here says so.
"""

import re

_LIST_ITEM = re.compile(r"^(- |\d+\. )")


def flow(text: str) -> str:
    """Join wrapped lines into paragraphs; a blank line or a list item ("- ", "1. ") starts a new line."""
    lines: list[str] = []
    joinable = False
    for raw in text.strip().splitlines():
        line = raw.strip()
        if not line:
            lines.append("")
            joinable = False
        elif joinable and not _LIST_ITEM.match(line):
            lines[-1] += " " + line
        else:
            lines.append(line)
            joinable = True
    return "\n".join(lines)


INSTRUCTIONS = flow("""
Watch and triage Retab workflow experiment runs. An experiment runs one workflow block (extract,
classifier, split, for_each) n_consensus times over a fixed set of documents; its score is the
agreement between those passes, from 0 to 1 (1 = every pass gave the same value), not accuracy against
expected outputs: there are no labels. A low score means the passes disagree: an unstable field (often
an ambiguous schema description or prompt) or an ambiguous, hard document. Two runs of the same block
on the same documents never score exactly alike, so a small change in score may be run-to-run noise.
- get_experiment_run: the current state of a run. Cheap; use it first.
- wait_for_run / wait_for_runs: block up to ~45 s until one run / several runs finish. If not finished,
  call again only if the result is needed now; stop after ~15 min or when two calls show no new documents.
- triage_experiment_run: why a finished run scored or failed as it did, in one call.
- list_experiment_runs, list_experiment_run_results, get_experiment_run_metrics: the details behind it.

A run that ended in `error` or `cancelled` is a normal answer, not a failure of the tool: read `error`
or `cancel_reason`, and do not wait on it again.
""")

GET_RUN = flow("""
Get the current state of a Retab experiment run: status, agreement score, documents done, errors,
timing. For a failed run it includes the error and the end of the stack trace. Returns at once; to wait
for an unfinished run to end, call wait_for_run.
""")

WAIT_RUN = flow("""
Wait until a Retab run (experiment, workflow or eval) ends, or a workflow run stops at a review gate
(needs_person: a person must act in Retab; tell the user rather than wait again), or timeout_s passes. Not
finished in time: a normal result (finished=false, timed_out=true) and one line; call again to keep waiting
(polling resumes where it left off); stop after ~15 min or when two calls show no progress. A run younger
than a minute is seen within 2 s of ending. Sends progress (documents, steps or evals done) when asked.
""")

WAIT_RUNS = flow("""
Wait on up to 20 Retab runs of any kind at once, until all end (mode='all') or the first does (mode='any'),
or until timeout_s passes; a workflow run held at a review gate counts as ended (needs_person). One compact
row per run. A run that cannot be read gets its reason in its row (read_error; status not_found,
invalid_id, refused or unreadable) while the others are still waited on. When not done, the hint gives the
exact call to make again.
""")

LIST_RUNS = flow("""
List Retab experiment runs, newest first, a compact row each (id, status, agreement score, documents,
errors, created); filter by experiment_id, workflow_id and status; next_cursor pages. For workflow or eval
runs, list_runs.
""")

LIST_RESULTS = flow("""
List a run's documents, one row each: document id, filename, status, error message (cut short) and
duration. status='error' shows only the failed documents. Returns next_cursor when there are more. For
agreement scores per document, use get_experiment_run_metrics.
""")

GET_METRICS = flow("""
A run's agreement scores (how far the consensus passes agree, 0 to 1): score, prior run's score and the
difference, and the lowest items of a view. view='summary': the run's documents; 'by_document'
(document_id): a document's fields; 'by_target' (target_path): documents for one field; 'votes'
(document_id, target_path): what each pass produced. Stale or missing metrics: a warning with Retab's reasons.
""")

TRIAGE = flow("""
Explain why a Retab experiment run ended as it did, in one call (under 4 KB): the verdict, the run summary,
its agreement against the prior run with a paired test (its interval excludes 0 exactly when p < 0.05; to
decide between two runs use compare_experiment_runs), failed documents grouped by error, the documents and
fields where the passes agree least, metrics staleness, and the next calls. Works on an unfinished run too.
""")

CANCEL = flow("""
Cancel a Retab experiment run that is still pending, queued or running. This stops the run for
everyone: only call it when the user asked for it. Cancelling a cancelled run changes nothing; a run
that already completed or failed cannot be cancelled (the answer says so).
""")
LIST_EXPERIMENTS = flow("""
List the experiments of a Retab workflow, one compact row each: id, name, block type, n_consensus,
documents, the latest run (id, status, score), and whether its metrics are stale (the block or the
documents changed since) and why. Read-only.
""")

GET_EXPERIMENT = flow("""
One Retab experiment: name, block, n_consensus, documents, its latest run and the one before, whether
the metrics are stale and why, and the exact next call worth making (wait, compare, triage or start).
Read-only.
""")

START = flow("""
Start a new run of a Retab experiment, after the user edited its block (or asked for a run). It costs
money: only call it when the user asked for a run or the experiment's metrics are stale. Asks the user
to confirm where the client can. Never starts two runs by accident: the request is sent once; if its
answer is lost, the tool finds out by listing the experiment's runs. If a run of the experiment is
already pending, queued or running, none is started and that run is returned: wait for it, or pass
allow_concurrent=true to start another anyway. Returns the run and the exact wait_for_run call.
""")

COMPARE = flow("""
Did a change to an experiment's block really help? Compares two runs (base = before, candidate = after)
document by document and field by field. Scores are agreement between consensus passes, not accuracy: each
delta is change plus run-to-run noise. Omit base_run_id for the run before on the same documents; when trying
several edits, pass the same base each time (each further try is judged stricter, so a chance "improved"
stays under 5%). verdict: improved, regressed, no detectable change (reading: "no change" or "too few
documents to tell"), or no verdict (why_no_verdict). The interval is the test inverted: it excludes 0
exactly when the verdict is a change. score_delta (Retab's scores) and mean_delta (paired documents) differ
when documents failed. min_detectable_shift: smaller changes are likely missed. Fields named are beyond
noise (Holm-corrected). The full rule is in the result. Under 4 KB.
""")


TRIAGE_PROMPT = flow("""
Triage the Retab experiment run {run_id}. Its score is the agreement between the block's consensus
passes over each document, not accuracy: a low score means the passes disagree.
1. Call get_experiment_run(run_id="{run_id}"). If it is not finished, wait with wait_for_run(run_id="{run_id}"):
   as a task where your host offers one (one call, its result when the run ends); else call it again until
   the run is finished (stop after ~15 min, or when two calls bring no new documents, and say so).
2. Call triage_experiment_run(run_id="{run_id}") and read its verdict.
3. If documents failed, call list_experiment_run_results(run_id="{run_id}", status="error") to see them
   all; group them by cause.
4. If the score dropped against the prior run, call get_experiment_run_metrics with view="by_document"
   for the document with the lowest agreement, then view="votes" for its least stable field, to see what
   the passes produced and how they disagree.
5. Answer in a few lines: how the run ended, the score and its change (a small change may be run-to-run
   noise), the main causes with the documents they hit, and the one change most likely to make the passes
   agree (for an unstable field: what in its schema description or the prompt is ambiguous).
""")

ITERATE_PROMPT = flow("""
Iterate on the Retab experiment {experiment_id}: find out whether the latest change to its block made the
consensus passes agree more, and what to change next. Scores are agreement between passes, not accuracy.
1. Call get_experiment(experiment_id="{experiment_id}").
2. Start a run with start_experiment_run(experiment_id="{experiment_id}") only if the user asked for one
   or the experiment's metrics are stale (the block or documents changed since its last run); it costs
   money. If a run is already going, use that one.
3. Wait for the latest run with wait_for_run: as a task where your host offers one (one call, its result
   when the run ends); else call it again until the run is finished (stop after ~15 min, or when two calls
   bring no new documents, and say so).
4. Call compare_experiment_runs(candidate_run_id=<the latest run>), with base_run_id=<the run of the version
   you kept> when you are trying several edits, and read its verdict: "no detectable change" means the
   difference is within run-to-run noise (its reading says whether that is "no change" or "too few documents
   to tell"); "no verdict" says what is missing.
5. Call triage_experiment_run(run_id=<the latest run>) for failures and the least stable fields.
6. Report in a few lines: what changed (score, documents and fields that changed), whether it is real (the
   verdict with n, the interval and the smallest change it could detect), and the one edit most likely to
   help (for an unstable field: what in its schema description or the prompt is ambiguous).
""")

GET_RUN_ANY = flow("""
A Retab run of any kind, now: experiment (exprun_…), workflow (run_…: steps done, the failing step, and
whether a review gate holds it for a person) or eval (wfevalrun_…: passed / failed / blocked of its evals).
wait_for_run waits.
""")

LIST_RUNS_ANY = flow("""
List workflow runs or eval runs (kind), newest first, a row each; filter by workflow_id and status;
next_cursor pages. For experiment runs: list_experiment_runs.
""")

TRIAGE_RUN = flow("""
Why a run of any kind ended as it did, in one call (under 4 KB). Workflow run: failed steps grouped by error,
review gates waiting on a person, slowest steps, where the outputs are. Eval run: failures by block and
assertion kind with actual vs expected, blocked evals and why, evals that drifted from their block (not
regressions). Experiment run: as triage_experiment_run.
""")

LIST_EVAL_RESULTS = flow("""
An eval run's results, failures first: each eval's outcome (passed, failed, or blocked: not evaluable), its
assertion kind, actual against expected, Retab's reason, and whether the eval drifted from its block.
""")

COMPARE_EVALS = flow("""
Did a change break or fix evals? Pairs two eval runs' results by eval: each regression (passed -> failed)
with actual vs expected, each fix, the evals not in both. Two verdicts, rules stated in the result: a strict
gate (any regression fails it) and McNemar's exact test (more fixes than regressions beyond the flips of an
unchanged configuration, LLM-judged assertions flip). Omit base_run_id for the run before.
""")

START_EVALS = flow("""
Start an eval run of a workflow's evals (all of them, one block's, or one eval). It costs money: only when
the user asked for it, or to check an edit. Never two by accident: one start at a time, and a lost answer is
found by listing; if a run of the same evals is already going, it is returned instead (allow_concurrent=true
starts another). Returns the run and the exact wait_for_run call.
""")

DOCUMENT_SCORES = flow("""
Every scored document of a run with its agreement and the prior run's, lowest first: the run view's
chart. Only hosts that render the view list this tool.
""")

ITERATE_BLOCK_PROMPT = flow("""
Check an edit to block {block_id} of the Retab workflow {workflow_id} in two steps: first that its evals
still pass (correctness on saved inputs), then that its consensus passes agree at least as well as before
(the experiment: agreement between passes, no labels). Both runs cost money: start one only if the user
asked for runs, and use a run that is already going instead of starting another.
1. Evals. Call list_runs(kind="eval", workflow_id="{workflow_id}", limit=3). If no eval run started after
   the edit, start one with start_eval_run(workflow_id="{workflow_id}", block_id="{block_id}").
2. Wait with wait_for_run(run_id=<the eval run>): as a task where your host offers one (one call, its result
   when the run ends); else call it again until it is finished (stop after ~15 min, or when two calls bring
   no new evals, and say so).
3. Call compare_eval_runs(candidate_run_id=<the eval run>). If its gate failed, report each regression with
   actual against expected and stop: the edit broke what the evals hold. Evals that drifted from the block
   are the eval's to fix, not the block's; for blocked evals, triage_run(run_id=<the eval run>) says why.
4. Agreement. {experiment_step} Start a run with start_experiment_run(experiment_id=<it>) only if asked or
   its metrics are stale, wait for it with wait_for_run, then call
   compare_experiment_runs(candidate_run_id=<that run>) and read its verdict.
5. Report in a few lines: the evals' gate and verdict (fixes, regressions, n), the agreement verdict (n, the
   interval, the smallest change it could detect), and whether to keep the edit: keep it when the gate
   passed and agreement did not regress; otherwise name the one edit most likely to help.
""")
