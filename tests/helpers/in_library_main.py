"""``ckptconv`` as the in-library tests run it in the libraries' environment (``CKPTCONV_LIBRARIES_PYTHON``):
mmcv-lite stands in there for mmcv, so its compiled ops are stubbed (nothing the checks run calls
one), and mmpretrain 1.2.0 is kept from importing its multimodal models, which fail on transformers 5
(tools/groundtruth/stubs.py says why). Everything else is the command as users run it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "groundtruth"))

import stubs  # noqa: E402

stubs.stub_mmcv_ext()
try:
    stubs.hide_multimodal_from_mmpretrain()
except ImportError:  # no mmpretrain here
    pass

from ckptconv.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
