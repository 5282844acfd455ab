"""Generators and their training (torch only; knows no CLI; the only files it touches are a training run's
log in :mod:`cellsynth.models.common`)."""
