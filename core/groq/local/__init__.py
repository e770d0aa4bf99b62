"""The local Groq-compatible endpoint: the offline default and the test double, with its own windows and faults."""
