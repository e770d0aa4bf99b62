"""The ICD-10-CM knowledge base: the service and its answers, its build, the DuckDB pool and the query cache."""
