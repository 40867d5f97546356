"""``ckptconv verify``'s library: one file (``file``), many (``many``), a config (``config``)."""
