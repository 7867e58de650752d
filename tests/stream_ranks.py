"""Run under torchrun: every rank streams `BATCHES` micro-batches of one clip from SHARDS with 2
workers and writes the clips it saw (name, epoch, worker) to OUT/rank-R.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from hear_wavjepa.training.feed import open_stream
from hear_wavjepa.training.recipe import load_recipe
from hear_wavjepa.training.sources import find_stream

BATCHES = 12

if __name__ == "__main__":
    shards, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = ["data.workers=2", "data.shuffle_buffer=2", "data.crops_per_clip=1"]
    recipe = load_recipe(None, [f"data.path={shards}", f"data.clips_per_step={world}", *settings])
    feed = open_stream(recipe, recipe.model_config(), find_stream(shards), None, rank, world, None)
    seen = []
    for step in range(BATCHES):
        _, items = feed.take(step)
        seen += [(n, e, i.worker) for i in items for n, e in zip(i.names, i.epochs, strict=True)]
    feed.close()
    (out / f"rank-{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()
