"""The ops ledger (ops.duckdb): its writer thread, its readers, what it records for Groq, and history across runs."""
