"""The ops ledger (ops.duckdb): its writer thread and the history read across runs."""
