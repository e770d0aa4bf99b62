"""Documents: intake checks, the job pipeline and its results, the worker pool and the extraction workers run."""
