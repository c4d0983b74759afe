"""Distillation: corpus, teacher, teacher targets, batches, losses, student initialisation, tracking, config."""
