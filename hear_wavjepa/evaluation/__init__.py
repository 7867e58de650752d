"""Evaluation harness: HEAR task folders, embedding, downstream protocols, scores and tables."""
