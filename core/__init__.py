"""medops resource core: Groq quota, case memory, pools and monitors; no UI.

One folder per part; `ResourceCore` composes them and is reached through `CoreCommands` (contract.py).
"""

__version__ = "0.1.0"
