"""Scene simulation: binaural room banks, noise banks, scene rendering, and `naturalize`."""
