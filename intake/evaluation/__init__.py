"""Evaluation of the judgement: classification and deduplication, measured on sets kept apart."""
