"""Pretraining: recipes, corpus and batches, schedules, training state and the loop."""
