"""Where a run's work is executed: this machine (the default pipeline) or a Dask cluster (``dask``)."""
