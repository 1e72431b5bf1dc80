"""Logs, metrics and the access log."""
