"""Generators and their training (torch only; opens no files, knows no CLI)."""
