"""Asterisk: a 14M-parameter sentence-embedding model (arXiv 2411.05691), native to Hugging Face.

Importing this package registers Asterisk with `AutoConfig`, `AutoModel` and
`AutoModelForSequenceClassification`, and marks the classes so that `save_pretrained` writes `auto_map`
and copies `configuration_asterisk.py` / `modeling_asterisk.py` beside the weights (for
`trust_remote_code=True` loading from the Hub). This file itself is not shipped.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_asterisk import AsteriskConfig
from .modeling_asterisk import (
    AsteriskForSequenceClassification,
    AsteriskModel,
    AsteriskPooler,
    AsteriskPreTrainedModel,
    masked_mean,
)

AutoConfig.register(AsteriskConfig.model_type, AsteriskConfig, exist_ok=True)
AutoModel.register(AsteriskConfig, AsteriskModel, exist_ok=True)
AutoModelForSequenceClassification.register(AsteriskConfig, AsteriskForSequenceClassification, exist_ok=True)

AsteriskConfig.register_for_auto_class()
AsteriskModel.register_for_auto_class("AutoModel")
AsteriskForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "AsteriskConfig",
    "AsteriskModel",
    "AsteriskForSequenceClassification",
    "AsteriskPreTrainedModel",
    "AsteriskPooler",
    "masked_mean",
]
