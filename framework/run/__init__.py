"""Running an experiment: config, plan, cells, calling providers, limits, resuming."""
