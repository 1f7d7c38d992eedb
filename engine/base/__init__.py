"""What every stage shares: errors, progress and cancel, atomic writes, regions, the plain types
that cross stages. Nothing here imports any other part of the engine."""
