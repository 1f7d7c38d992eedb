"""Readers and writers of annotation files: LabelMe, PixBench (revisitop layout + LabelMe labels)."""
