"""Diagnostics that read data and results."""
