"""Groq: requests, quota, scheduler, retry policy, gateway, wire formats, token estimate."""
