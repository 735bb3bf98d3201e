"""Training data for the report classifier: the sources it is built from and the corpus they give."""
