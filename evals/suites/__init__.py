"""Eval suites not tied to one agent, one file each (an agent's own suite lives in its file)."""
