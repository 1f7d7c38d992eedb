"""Measuring methods: the benchmark metrics (`metrics`, exactly as bench/FORMAT.md), a PixBench set
run end to end (`bench`), and the `pixret eval` report (`report`)."""
