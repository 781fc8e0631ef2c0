"""humr.data: the sample schema, the on-disk format, datasets and loaders, augmentation and the
synthetic benchmark generator.

* :mod:`humr.data.format` (folder layout, documented there) and :mod:`humr.data.schema`
  (stored keys, validation, :class:`DataFormatError`).
* :class:`HumrDataset`, :func:`make_dataloader` (:mod:`humr.data.dataset`).
* :class:`Augmentation` (:mod:`humr.data.augment`, kornia).
* :class:`OfficialDataset` (:mod:`humr.data.official`): one split of the paper's data release
  read as released (splits and layout: :mod:`humr.data.official_splits`; training mix and
  ``data.format: official``: :mod:`humr.data.official_release`; a release-format test
  tree: :mod:`humr.data.official_fixture`; Tables 1 / 2 beside the paper:
  :mod:`humr.data.official_report`).
* :func:`generate` (:mod:`humr.data.synthetic`): the synthetic benchmark with a known posterior.

Importing this package does not import smplx, kornia or cv2.
"""
from humr.data.dataset import HumrDataset, make_dataloader
from humr.data.schema import DataFormatError

__all__ = ["Augmentation", "DataFormatError", "HumrDataset", "OfficialDataset", "generate",
           "make_dataloader"]


def __getattr__(name: str):
    if name == "Augmentation":
        from humr.data.augment import Augmentation

        return Augmentation
    if name == "OfficialDataset":
        from humr.data.official import OfficialDataset

        return OfficialDataset
    if name == "generate":
        from humr.data.synthetic import generate

        return generate
    raise AttributeError(f"module 'humr.data' has no attribute {name!r}")
