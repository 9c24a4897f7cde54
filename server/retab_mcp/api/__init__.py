"""The Retab API: the async client, its tolerant models, the statuses, the errors and how each is handled."""
