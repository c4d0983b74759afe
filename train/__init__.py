"""Training, evaluation and benchmarking code for Asterisk (not shipped to the Hub)."""
