"""Generator networks and the LightningModule (depends on ptycho_torch.physics).

generator -- :class:`CNNGenerator` (normalised amplitude -> complex object patches)
module    -- :class:`PtychoPINNModule` (generator + forward model + loss, Lightning), built from
             the canonical configs (config.bridge.ModulePlan): no defaults of its own
optim     -- optimizers and learning-rate schedulers by canonical name
"""

from ptycho_torch.model.generator import AMP_ACTIVATIONS, CNNGenerator
from ptycho_torch.model.module import PtychoPINNModule
from ptycho_torch.model.optim import OPTIMIZERS, SCHEDULERS

__all__ = [
    "AMP_ACTIVATIONS",
    "CNNGenerator",
    "OPTIMIZERS",
    "PtychoPINNModule",
    "SCHEDULERS",
]
