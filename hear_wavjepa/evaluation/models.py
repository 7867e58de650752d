"""Models to evaluate: parsing `--models` entries and their stable, readable ids.

An entry is `[NAME=]TARGET` where TARGET is a checkpoint (a `.safetensors`, `.ckpt`, `.bin` or
`.pt` file, or a hub snapshot folder; evaluated through `hear_wavjepa`), `MODULE` (any importable
HEAR module) or `MODULE:{json options}`. The model id is NAME plus a short hash of the weights
digest, the options and the channel policy, so two option sets never share an id and the same
model always gets the same one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from hear_wavjepa.evaluation.embed import ModuleSpec

#: files evaluated through hear_wavjepa: its own checkpoints, and reference checkpoints (a hub
#: snapshot's weights, a Lightning .ckpt, a plain torch file), which it imports in memory
WEIGHTS_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: ModuleSpec

    @property
    def model_id(self) -> str:
        described = self.spec.describe()
        described.pop("model_path")  # the id follows the weights, not where the file lies
        digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
        return f"{self.name}.{digest[:8]}"


def parse_model(text: str, channels: str = "auto") -> ModelEntry:
    """`[NAME=]TARGET` -> ModelEntry (see the module docstring)."""
    name, _, target = text.partition("=") if _looks_named(text) else ("", "", text)
    module, options = target, {}
    if target.endswith(WEIGHTS_SUFFIXES) or Path(target).is_dir():
        if not Path(target).exists():
            raise ValueError(f"{target}: checkpoint not found")
        spec = ModuleSpec("hear_wavjepa", target, {}, channels)
        return ModelEntry(name or _clean(Path(target).stem), spec)
    if ":" in target:
        module, _, blob = target.partition(":")
        try:
            options = json.loads(blob)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model {text!r}: options after ':' are not JSON ({exc})") from exc
        if not isinstance(options, dict):
            raise ValueError(f"model {text!r}: options must be a JSON object")
    if not re.fullmatch(r"[A-Za-z_][\w.]*", module):
        raise ValueError(f"model {text!r}: {module!r} is not a module name or a .safetensors file")
    default_name = module.rsplit(".", 1)[-1] + ("-" + _options_name(options) if options else "")
    return ModelEntry(name or _clean(default_name), ModuleSpec(module, "", options, channels))


def _looks_named(text: str) -> bool:
    """`NAME=...` with a plain NAME, unless `text` is itself a file (e.g. `epoch=3.safetensors`)."""
    name, sep, _ = text.partition("=")
    return bool(sep) and not Path(text).is_file() and re.fullmatch(r"[\w.-]+", name) is not None


def _options_name(options: dict) -> str:
    return "-".join(f"{k}-{v}" for k, v in sorted(options.items()))


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] or "model"
