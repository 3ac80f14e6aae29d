"""b2b_train: learns a camera's blur (Blur2Blur translator), the known-blur deblurrer and the kernel extractor.

Knows nothing of cameras or threads; b2b_stream imports from here, never the reverse.
"""

__version__ = "0.1.0"
