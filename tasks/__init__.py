"""The suite definitions, shipped inside the package as `hear_wavjepa.task_suites`."""
