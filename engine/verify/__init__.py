"""Stage 4, verification of a query/image pair: `spatial` (ratio-test matches, MAGSAC++
homography), `topological` (patches verified and grown across views), and `localize` (the region
the verified geometry predicts in the database image)."""
