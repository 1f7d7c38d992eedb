"""Stage 5, propagation over the collection: the offline graph of pairwise-verified images
(`graph`), and diffusion, hypergraph propagation and uncertainty on it (`diffuse`)."""
