"""The fleet: one Groq quota for every medops of an organisation, kept in a shared Redis."""
