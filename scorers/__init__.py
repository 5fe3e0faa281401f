"""The built-in scorers (``visionbench.scorers``): each module registers its own through ``register_scorers``."""
