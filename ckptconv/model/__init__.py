"""A pycls model as numbers: its families (families.py), the numbers one model is built from
(variants.py) and how they are read from a checkpoint's cfg, meta and shapes (structure.py).

``ckptconv.tables`` holds the rules engine that maps keys between layouts; this package holds what
those rules are about. Neither imports torch.
"""
