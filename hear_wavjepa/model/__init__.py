"""WavJEPA model: front end, post-LN transformer, predictor, masker, presets."""

from hear_wavjepa.model.config import MaskingConfig, TransformerConfig, WavJEPAConfig
from hear_wavjepa.model.ema import ema_momentum
from hear_wavjepa.model.jepa import AudioEncoder, JEPAOutput, WavJEPA
from hear_wavjepa.model.masking import Masks, TimeInverseMasker
from hear_wavjepa.model.presets import PRESETS, count_parameters, preset

__all__ = [
    "PRESETS",
    "AudioEncoder",
    "JEPAOutput",
    "MaskingConfig",
    "Masks",
    "TimeInverseMasker",
    "TransformerConfig",
    "WavJEPA",
    "WavJEPAConfig",
    "count_parameters",
    "ema_momentum",
    "preset",
]
