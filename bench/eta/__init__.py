"""The completion-estimate benchmark: traces, their replay through the SDK, and the scores."""
