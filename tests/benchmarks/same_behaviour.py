"""Same behaviour at two git revisions: `python tests/benchmarks/same_behaviour.py BEFORE AFTER`.

Each revision is checked out into a temporary git worktree and run from there (the checkout on
PYTHONPATH, its own $HEAR_WAVJEPA_HOME) on the same inputs, which this script writes itself:

- `init tiny`: the checkpoint file, byte for byte;
- `embed` of a small HEAR task with that checkpoint and with HEAR-Naive: the embedding caches,
  every file byte for byte;
- `naturalize` of a small 48 kHz task with tiny scene banks: the Nat folder and the banks;
- `tables` regenerated from one set of stored scores (made once, by BEFORE's `eval`);
- the command line: every subcommand and `--flag` of BEFORE's `--help`, and every `hear-wavjepa`
  command and flag named in BEFORE's README, exist in AFTER.

Prints one line per check and exits 1 if any differs. Needs git and the torch venv's Python
(`--python`, default: this interpreter).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAIVE = "hear-naive=hear_wavjepa.baselines.naive"
#: tiny scene banks, as the tests use: 4 rooms, 8 noise clips
TINY_NAT = {
    "rooms": {"n_train": 2, "n_test": 2, "positions": 3, "rt60": [0.15, 0.25],
              "width": [3, 4], "depth": [3, 4], "height": [2.5, 2.8], "rir_seconds": 0.25,
              "rays": 500},
    "noise": {"seconds": 2.0, "coloured": 6, "babble": 2, "talkers": [2, 3],
              "test_fraction": 0.5},
    "scene": {"noise_sources": [1, 2]},
}  # fmt: skip


def write_task(folder: Path, *, rate: int, labels=("a", "b", "c"), folds: int = 0) -> Path:
    """A small scene multiclass HEAR task folder (tones in noise) at `rate` Hz."""
    splits = [f"fold{i:02d}" for i in range(folds)] if folds else ["train", "valid", "test"]
    meta = {"task_name": folder.name.rsplit("-", 2)[0], "version": "v1", "mode": "full",
            "embedding_type": "scene", "prediction_type": "multiclass",
            "split_mode": "new_split_kfold" if folds else "trainvaltest", "splits": splits,
            "sample_duration": 0.5, "evaluation": ["top1_acc"]}  # fmt: skip
    if folds:
        meta["nfolds"] = folds
    folder.mkdir(parents=True)
    (folder / "task_metadata.json").write_text(json.dumps(meta))
    rows = "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    (folder / "labelvocabulary.csv").write_text("idx,label\n" + rows)
    rng = np.random.default_rng(len(folder.name))
    t = np.arange(rate // 2) / rate
    for split in splits:
        (folder / str(rate) / split).mkdir(parents=True)
        table = {}
        for i in range(6):
            label = labels[i % len(labels)]
            x = 0.3 * np.sin(2 * np.pi * 300 * (1 + labels.index(label)) * t)
            x = x + 0.01 * rng.standard_normal(t.size)
            name = f"{split}_{i}.wav"
            soundfile.write(str(folder / str(rate) / split / name), x, rate, subtype="PCM_16")
            table[name] = [label]
        (folder / f"{split}.json").write_text(json.dumps(table))
    return folder


def safetensors_content(path: Path) -> tuple[str, bytes]:
    """(header as sorted JSON, tensor bytes): safetensors writes its header's metadata in the
    order of a Rust HashMap, which changes from one process to the next, so the same checkpoint
    is not the same bytes twice; everything else is compared byte for byte."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True), data[8 + size :]


def tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Checkout:
    """One revision in a git worktree, run with its own $HEAR_WAVJEPA_HOME."""

    def __init__(self, rev: str, work: Path, python: str, label: str):
        self.rev, self.python = rev, python
        self.dir = work / label
        self.home = work / f"home-{label}"
        self.out = work / f"out-{label}"
        self.out.mkdir()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(self.dir), rev], check=True)  # fmt: skip

    def cli(self, *args: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(self.dir), "HEAR_WAVJEPA_HOME": str(self.home)}
        run = subprocess.run([self.python, "-m", "hear_wavjepa", *args], cwd=self.dir, env=env,
                             capture_output=True, text=True)  # fmt: skip
        if run.returncode:
            raise RuntimeError(f"{self.rev}: hear-wavjepa {' '.join(args)}:\n{run.stderr}")
        return run.stdout

    def remove(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.dir)],
                       check=False)  # fmt: skip


def flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))


def commands(checkout: Checkout) -> dict[str, set[str]]:
    """{command (with its subcommand, if any): its flags} from `--help`."""
    found: dict[str, set[str]] = {}
    main = checkout.cli("--help")
    names = re.search(r"\{([a-z,-]+)\}", main).group(1).split(",")
    for name in names:
        text = checkout.cli(name, "--help")
        found[name] = flags(text)
        sub = re.search(r"\{([a-z,-]+)\}", text)
        for child in sub.group(1).split(",") if sub else []:
            found[f"{name} {child}"] = flags(checkout.cli(name, child, "--help"))
    return found


def readme_commands(readme: str) -> list[tuple[str, set[str]]]:
    """(command, flags) of every `hear-wavjepa ...` line of a README."""
    found = []
    for line in readme.splitlines():
        for match in re.finditer(r"hear-wavjepa ([a-z][a-z-]*)( [a-z][a-z-]*)?([^`|]*)", line):
            found.append((match.group(1), (match.group(2) or "").strip(), flags(match.group(3))))
    return found


def check_command_line(before: Checkout, after: Checkout, rev: str, check) -> None:
    """Every command and flag of BEFORE's --help and of BEFORE's README exists in AFTER."""
    old, new = commands(before), commands(after)
    lost = {k: sorted(v - new.get(k, set())) for k, v in old.items()}
    lost = {k: v for k, v in lost.items() if v or k not in new}
    check(f"command line: {len(old)} commands of BEFORE's --help", not lost, str(lost or ""))
    readme = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:README.md"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    missing = []
    for cmd, sub, named in readme_commands(readme):
        cmd = f"{cmd} {sub}" if f"{cmd} {sub}" in new else cmd
        if cmd not in new or named - new[cmd]:
            missing.append((cmd, sorted(named - new.get(cmd, set()))))
    check("every hear-wavjepa command and flag of BEFORE's README", not missing, str(missing))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="same-behaviour-"))
    checkouts = []
    failed = 0

    def check(name: str, same: bool, detail: str = "") -> None:
        nonlocal failed
        failed += not same
        print(f"{'same' if same else 'DIFFERENT':<9} {name}{f'  ({detail})' if detail else ''}")

    try:
        inputs = work / "inputs"
        tasks = inputs / "tasks"
        write_task(tasks / "mini_keywords-v1-full", rate=16000)
        write_task(tasks / "mini_drums-v1-full", rate=16000, folds=3)
        nat_in = write_task(inputs / "nat_in" / "toy48-v1-full", rate=48000)
        nat_config = inputs / "nat.yaml"
        base = yaml.safe_load((ROOT / "tasks" / "nat.yaml").read_text())
        for section, values in TINY_NAT.items():
            base[section].update(values)
        nat_config.write_text(yaml.safe_dump(base))
        before = Checkout(args.before, work, args.python, "before")
        checkouts.append(before)
        after = Checkout(args.after, work, args.python, "after")
        checkouts.append(after)
        print(f"before {args.before}, after {args.after}; work folder {work}")

        for c in (before, after):
            c.cli("init", "tiny", str(c.out / "init.safetensors"))
        check("init tiny: checkpoint (header as JSON, tensors byte for byte)",
              safetensors_content(before.out / "init.safetensors")
              == safetensors_content(after.out / "init.safetensors"))  # fmt: skip
        ckpt = before.out / "init.safetensors"  # one file: its hash is part of the cache key
        for c in (before, after):
            for task in sorted(tasks.iterdir()):
                c.cli("embed", "--module", "hear_wavjepa", "--model", str(ckpt),
                      "--task", str(task))  # fmt: skip
                c.cli("embed", "--module", "hear_wavjepa.baselines.naive", "--task", str(task))
            c.cli("naturalize", str(nat_in), str(c.out / "nat"), "--config", str(nat_config),
                  "--workers", "1", "--no-progress")  # fmt: skip
        for name in ("embeddings", "scenes"):
            a, b = tree(before.home / name), tree(after.home / name)
            check(f"$HEAR_WAVJEPA_HOME/{name}: {len(a)} files", a == b and bool(a))
        a, b = tree(before.out / "nat"), tree(after.out / "nat")
        check(f"naturalized folder: {len(a)} files", a == b and bool(a))

        scores = work / "scores"
        evaluate = ["eval", "--suite", "mini", "--tasks-dir", str(tasks), "--models", NAIVE,
                    "--protocols", "linear,knn", "--grid", "faster", "--results-dir"]  # fmt: skip
        before.cli(*evaluate, str(scores))
        after.cli(*evaluate, str(after.out / "results"))  # the command runs; scores carry dates
        for c in (before, after):
            shutil.copytree(scores, c.out / "scores")  # keeps modification times
            c.cli("tables", "--results-dir", str(c.out / "scores"))
        a = {k: v for k, v in tree(before.out / "scores").items() if k.endswith(".md")}
        b = {k: v for k, v in tree(after.out / "scores").items() if k.endswith(".md")}
        check(f"tables from stored scores: {', '.join(sorted(a))}", a == b and bool(a))

        check_command_line(before, after, args.before, check)
    finally:
        for c in checkouts:
            c.remove()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
