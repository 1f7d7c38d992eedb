"""Stage 3, the index: visual vocabulary, ASMK* aggregation and the inverted file (`asmk`), which
turn a query region into a shortlist of images."""
