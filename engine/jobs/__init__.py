"""Jobs: specs, the executor that turns a spec into a catalogued run, and the job-kind registry.

Modules: :mod:`engine.jobs.specs` (``JobSpec``), :mod:`engine.jobs.runner` (``LocalExecutor``,
``JobOutput``, ``RunResult``, ``job_kinds``, ``new_run_id``), :mod:`engine.jobs.kinds`
(``load_job_kinds``: imports each model family's job module). Nothing here imports torch;
the families' job functions import it when they run.
"""
