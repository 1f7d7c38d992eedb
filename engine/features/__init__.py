"""Stage 2, local features: extraction (`extract`: RootSIFT) and the memory-mapped feature store
(`store`)."""
