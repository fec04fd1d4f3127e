"""Scorers: what a selection ranks by (learner and reference losses, learnability, uncertainty,
gradient-norm bounds, pair scores, remembered losses), each declaring what it needs."""
