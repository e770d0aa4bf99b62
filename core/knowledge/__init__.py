"""The ICD-10-CM knowledge base: its build, the DuckDB pool and the query cache."""
