"""What a model (or a person) reads: typed views of runs, lists, metrics and triage, and their text."""
