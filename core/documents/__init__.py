"""Documents: intake checks, the job pipeline, its worker processes and the extraction they run."""
