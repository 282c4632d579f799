"""Generator networks and the LightningModule (depends on ptycho_torch.physics).

generator -- :class:`CNNGenerator` (normalised amplitude -> complex object patches)
module    -- :class:`PtychoPINNModule` (generator + forward model + loss, Lightning)
optim     -- optimizers and learning-rate schedulers by canonical name
"""

from ptycho_torch.model.generator import AMP_ACTIVATIONS, CNNGenerator
from ptycho_torch.model.module import DEFAULT_LOSS, DEFAULT_MODEL, UNUSED_MODEL_FIELDS, PtychoPINNModule
from ptycho_torch.model.optim import DEFAULT_OPTIM, OPTIMIZERS, SCHEDULERS

__all__ = [
    "AMP_ACTIVATIONS",
    "CNNGenerator",
    "DEFAULT_LOSS",
    "DEFAULT_MODEL",
    "DEFAULT_OPTIM",
    "OPTIMIZERS",
    "PtychoPINNModule",
    "SCHEDULERS",
    "UNUSED_MODEL_FIELDS",
]
