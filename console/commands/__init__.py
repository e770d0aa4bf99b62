"""One module per `medops` subcommand; each exposes `register(subparsers)`."""

# Listed here so `medops --help` shows them in this order.
COMMANDS = ("doctor", "status", "config", "limits", "kb", "extract", "ask", "worker", "fleet", "requests", "endpoint",
            "gateway", "serve")
