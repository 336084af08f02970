"""Search: Monte Carlo search trees over fragments of policy responses."""
