"""Foundations every layer shares: settings, time, logs, redaction, telemetry, text clipping."""
