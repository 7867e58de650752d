"""hear-wavjepa: WavJEPA / WavJEPA-Nat in PyTorch, a HEAR module and a HEAR / Nat-HEAR harness.

The package itself is the HEAR module: `hear-validator hear_wavjepa [-m model.safetensors]`.
"""

__version__ = "0.1.0"

from hear_wavjepa.api import get_scene_embeddings, get_timestamp_embeddings, load_model

__all__ = ["__version__", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
