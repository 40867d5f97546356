"""ckptconv's version: recorded in every output's meta, so it lives below everything that writes one."""

__version__ = "0.1.0"
