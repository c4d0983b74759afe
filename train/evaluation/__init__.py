"""Evaluation: task registry, classification protocols, embedders, Asterisk + FC, plots."""
