"""Where indexing's batches run: in this process, or on a Dask cluster (engine.parallel.cluster)."""
