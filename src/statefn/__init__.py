"""statefn: run workflows of Python jobs that pass JSON state from step to step."""
