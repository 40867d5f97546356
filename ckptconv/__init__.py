"""ckptconv: convert pycls EfficientNet checkpoints to MMDetection (and back), verified bit for bit.

Importing the package is cheap: torch is imported only by the modules that handle tensors.
"""

__version__ = "0.1.0"
