"""Rewards: tool-call parsing, checking and execution (pure Python, no Django)."""
