"""The store layer: the only code that knows paths, partitions and atomic publishing (lake, publish, chain)."""
