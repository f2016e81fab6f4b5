"""The paper's GAN setting: AdversarialNAS Gan (21 variables) and GanHard (72) spaces, scored by FID.

Modules: ``ops`` (edge operations), ``generator``, ``discriminator``, ``space`` (variables, ownership),
``model`` (G + D + EMA G, training steps), ``data``, ``metrics`` (FID, IS, offline stand-in), ``task``.
"""

from .data import DataUnavailable
from .metrics import InceptionWeightsUnavailable
from .task import GanMember, GanTask

__all__ = ["GanTask", "GanMember", "DataUnavailable", "InceptionWeightsUnavailable"]
