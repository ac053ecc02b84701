"""Monitoring on the orchestration side: shifted traffic, monitoring runs, their reports."""
