"""Rewards: tool schemas, tool-call parsing, checking and execution (pure Python: no Django, nothing from apps/)."""
