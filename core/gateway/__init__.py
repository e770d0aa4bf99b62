"""The gateway: Groq's HTTP API for agents, served through a core's scheduler and the fleet's quota."""
