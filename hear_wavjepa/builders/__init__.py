"""Task-suite builders: the offline mini-HEAR suite (`builders.mini`) and the synthetic
pretraining corpus (`builders.synthetic_corpus`)."""
