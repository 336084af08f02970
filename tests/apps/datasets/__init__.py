"""Tests of dataset snapshots: freezing, export rows, the export command."""
