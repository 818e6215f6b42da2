"""Scenario scripts: the selftests' helper verbs plus a few shell commands."""
