"""The pretraining recipes, shipped inside the package as `hear_wavjepa.recipes`."""
