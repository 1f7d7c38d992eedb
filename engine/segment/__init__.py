"""Stage 6, segmentation: the object's own outline in a hit, refined from the verified geometry
(`refine`: carried query mask, colour models, graph cut), and the refine tool's corrections
(`outline`: the same on decoded photos and hits' evidence)."""
