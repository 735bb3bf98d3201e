"""One module per door; each follows the contract in intake/types.py."""
