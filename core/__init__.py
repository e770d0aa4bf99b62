"""medops resource core: Groq quota, case memory, pools and monitors; no UI."""

__version__ = "0.1.0"
