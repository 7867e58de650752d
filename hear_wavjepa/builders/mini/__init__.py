"""The offline mini-HEAR suite: HEAR-format task folders from packaged speech, music and sounds.

`build.build_mini` is the entry point; `tasks/mini.yaml` is the recipe.
"""
