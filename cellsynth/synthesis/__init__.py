"""From instance labels to images: conditioning, patch engine, physics renderer, pipeline."""
