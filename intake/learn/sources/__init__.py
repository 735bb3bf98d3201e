"""Readers that turn public vocabularies (ICD-10-CM, WordNet) into labelled examples for the classifier."""
