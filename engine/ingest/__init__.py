"""Stage 1, ingest: decoding image files (`imageio`) and walking a collection folder against the
catalog (`scan`: new, changed, removed, unchanged)."""
