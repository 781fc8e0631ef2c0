"""Evaluation metrics (paper section 5.1) as torchmetrics Metrics, with functional twins.

Every class keeps scalar sum / count states reduced with ``sum``, so DDP synchronisation is
exact, and is registered in :data:`humr.METRICS`. ``humr.metrics.functional`` computes the
same numbers for one batch. Hypothesis 0 of every prediction is the mode (z = 0); metrics of
"samples" use the random hypotheses 1..S-1.
"""
from humr.metrics import functional, protocols
from humr.metrics.accuracy import HypothesisAccuracy
from humr.metrics.keypoints import Consistency2D, Spread3D
from humr.metrics.mask import MaskPlausibility
from humr.metrics.posterior import PosteriorDistance

__all__ = [
           "Consistency2D",
           "HypothesisAccuracy",
           "MaskPlausibility",
           "PosteriorDistance",
           "Spread3D",
           "functional",
           "protocols",
]
