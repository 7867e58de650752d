"""hear-wavjepa: WavJEPA / WavJEPA-Nat in PyTorch, a HEAR module and a HEAR / Nat-HEAR harness."""

__version__ = "0.1.0"
