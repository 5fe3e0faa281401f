"""What a run leaves: the result bundle, its records, and the scores computed from them."""
