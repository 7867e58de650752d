"""Task-suite builders: the offline mini-HEAR suite (`suites.mini`)."""
