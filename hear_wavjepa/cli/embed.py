"""CLI: `hear-wavjepa embed --module M [--model PATH] [--options JSON] --task DIR [DIR ...]`."""

from __future__ import annotations

import argparse
import json

from hear_wavjepa.cli import command


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", default="hear_wavjepa", help="importable HEAR module")
    parser.add_argument("--model", default="", help="weights file for load_model")
    parser.add_argument("--options", default="{}", help="load_model keyword options, as JSON")
    parser.add_argument("--channels", default="auto", help="auto | native | mean | first")
    parser.add_argument("--task", nargs="+", required=True, help="HEAR task folder(s)")
    parser.add_argument("--out", help="cache dir (one task only; default under $HEAR_WAVJEPA_HOME)")
    parser.add_argument("--device", help="e.g. cpu, cuda:0 (default: cuda if available)")


@command("embed", "embed HEAR task folders with a HEAR module into a resumable cache", _args)
def embed(args: argparse.Namespace) -> int:
    from hear_wavjepa.evaluation.embed import ModuleSpec, embed_task

    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--options is not valid JSON: {exc}") from exc
    if args.out and len(args.task) > 1:
        raise SystemExit("--out names one cache dir: give one --task with it")
    spec = ModuleSpec(args.module, args.model, options, args.channels)
    for task in args.task:
        result = embed_task(spec, task, args.out, device=args.device)
        print(
            f"{result.out_dir}: {result.clips} clips in {result.seconds:.1f} s "
            f"({result.clips_per_second:.1f} clips/s)"
        )
    return 0
