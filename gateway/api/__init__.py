"""Versioned HTTP API: one controller per resource per version."""
