"""One construct per concern, composed into SkyliftStack by infrastructure/stack.py. (Named
"components", not "constructs", so it never shadows the constructs library it builds on.)"""

from infrastructure.components.batch_fanout import BatchFanout
from infrastructure.components.batch_trigger import BatchTrigger
from infrastructure.components.functions import Functions
from infrastructure.components.model_signing import ModelSigning
from infrastructure.components.observability import Observability
from infrastructure.components.scheduling import Scheduling
from infrastructure.components.serving import Serving
from infrastructure.components.storage import Storage

__all__ = [
    "BatchFanout",
    "BatchTrigger",
    "Functions",
    "ModelSigning",
    "Observability",
    "Scheduling",
    "Serving",
    "Storage",
]
