"""Groq: prompt values, quota, scheduler, gateway and its errors, wire formats, token estimate.

`GroqPath` (path.py) composes them for the core.
"""
