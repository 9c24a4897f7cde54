"""Waiting on runs: when to poll, one shared poll loop per run, and waits on several runs at once."""
