"""Retention: policy-driven, audited, set-based deletion of what should go and nothing else."""
