"""CLI: `hear-wavjepa convert` (reference checkpoint -> .safetensors) and `hear-wavjepa init`."""

from __future__ import annotations

import argparse

import torch

from hear_wavjepa.cli import command


def _convert_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ckpt",
        help="reference checkpoint: a hub snapshot folder or its model.safetensors / "
        "pytorch_model.bin, a Lightning .ckpt, or a plain state dict (.pt, .safetensors)",
    )
    parser.add_argument("out", help="output .safetensors file")
    parser.add_argument("--preset", help="architecture to assume instead of inferring it")
    parser.add_argument(
        "--nat-order",
        choices=("interleaved", "aligned"),
        default="interleaved",
        help="Nat mask order to record (default: interleaved, the order the reference trained "
        "with; aligned masks both ears at the same times)",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow arbitrary pickled objects (executes code from the file)",
    )


@command(
    "convert",
    "import a reference (labhamlet/wavjepa) checkpoint: hub snapshot, Lightning or plain",
    _convert_args,
)
def convert(args: argparse.Namespace) -> int:
    from hear_wavjepa.checkpoint import CheckpointError
    from hear_wavjepa.model.presets import preset
    from hear_wavjepa.reference import convert_reference

    try:
        config = preset(args.preset) if args.preset else None
    except ValueError as exc:
        raise CheckpointError(f"--preset: {exc}") from exc
    out = convert_reference(
        args.ckpt,
        args.out,
        trust_pickle=args.trust_pickle,
        config=config,
        nat_order=args.nat_order,
    )
    print(f"wrote {out}")
    return 0


def _init_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="model preset, e.g. tiny, base, base-nat")
    parser.add_argument("out", help="output .safetensors file")
    parser.add_argument("--seed", type=int, default=0)


@command("init", "write a randomly initialised checkpoint of a preset", _init_args)
def init(args: argparse.Namespace) -> int:
    from hear_wavjepa.checkpoint import save_checkpoint
    from hear_wavjepa.model import WavJEPA, preset

    config = preset(args.preset)
    torch.manual_seed(args.seed)
    model = WavJEPA(config)
    out = save_checkpoint(
        args.out,
        model.state_dict(),
        config,
        kind="wavjepa",
        step=0,
        extra={"preset": args.preset, "seed": args.seed},
    )
    print(f"wrote {out}")
    return 0
