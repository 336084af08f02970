"""A generated tool-use environment (FTRL's five stages): tools with Python implementations, and queries."""

from .generator import Environment, EnvironmentConfig, generate_environment

__all__ = ["Environment", "EnvironmentConfig", "generate_environment"]
