"""Binaural room banks: simulated shoebox rooms with a KEMAR head and several source positions.

Each room holds one listener (MIT KEMAR HRTF from Debian's `libmysofa1`, read by pyroomacoustics'
`MeasuredDirectivityFile`) and `positions` sound-source positions. Responses are simulated with the
hybrid image-source (order `max_order`) + ray-tracing method, absorption set by `inverse_sabine`
from a drawn RT60. A bank is a deterministic function of its config (rooms are seeded by (seed,
room index), pyroomacoustics' C++ RNG included), cached under
`$HEAR_WAVJEPA_HOME/scenes/rooms-<key>/`; the first `n_train` rooms are train rooms, the remaining
`n_test` test rooms.

pyroomacoustics' ray tracer draws each ear's late tail from its own noise, so the two tails are
uncorrelated even at low frequencies, where a real head's ears receive a nearly coherent diffuse
field. `binaural_coherence` mixes the tails (from `MIXING_MS` after the direct sound) per frequency
to the diffuse-field coherence of two points a head width apart, sinc(2 pi f d / c), keeping each
ear's energy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hear_wavjepa.atomicio import atomic_write, write_text
from hear_wavjepa.paths import scenes_dir

KEMAR_SOFA = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
#: Listener height range, minimum distances to a wall and from a source to the head (all in m).
HEAD_HEIGHT = (1.2, 1.8)
WALL_MARGIN = 0.4
MIN_SOURCE_DISTANCE = 0.75
MAX_SOURCE_HEIGHT = 2.2
#: Late-tail coherence: starts this long after the direct sound (ms); effective ear distance (m).
MIXING_MS = 50.0
HEAD_WIDTH = 0.2
SPEED_OF_SOUND = 343.0


def check_range(
    name: str, value: tuple[float, float], low: float, high: float
) -> tuple[float, float]:
    """Validate a (min, max) range lying inside [low, high]; returns it as a float tuple."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be two numbers (min, max), got {value!r}") from err
    if not (np.isfinite(a) and np.isfinite(b)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if a > b:
        raise ValueError(f"{name} range is empty: min {a} > max {b}")
    if a < low or b > high:
        raise ValueError(f"{name} range ({a}, {b}) is absurd: it must lie within [{low}, {high}]")
    return a, b


@dataclass(frozen=True)
class RoomBankConfig:
    """Everything that determines a room bank. Lengths in m, times in s, rates in Hz."""

    n_train: int = 48
    n_test: int = 16
    positions: int = 6
    rt60: tuple[float, float] = (0.2, 1.0)
    width: tuple[float, float] = (3.0, 10.0)
    depth: tuple[float, float] = (3.0, 8.0)
    height: tuple[float, float] = (2.5, 4.0)
    sample_rate: int = 16000
    rir_seconds: float = 1.0
    max_order: int = 3
    rays: int = 5000
    hrtf: str = KEMAR_SOFA
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "positions", "max_order", "rays"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"room bank {name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "rt60", check_range("RT60 (s)", self.rt60, 0.05, 3.0))
        for name in ("width", "depth"):
            object.__setattr__(
                self, name, check_range(f"room {name} (m)", getattr(self, name), 2, 50)
            )
        object.__setattr__(self, "height", check_range("room height (m)", self.height, 2.4, 20))
        if not 0.05 <= self.rir_seconds <= 5:
            raise ValueError(f"rir_seconds must lie in [0.05, 5], got {self.rir_seconds}")
        check_hrtf(self.hrtf)
        if self.sample_rate not in (16000, 32000, 44100, 48000):
            raise ValueError(
                f"room bank sample_rate must be 16000/32000/44100/48000: {self.sample_rate}"
            )

    @property
    def n_rooms(self) -> int:
        return self.n_train + self.n_test

    @property
    def taps(self) -> int:
        return round(self.rir_seconds * self.sample_rate)

    def key(self) -> str:
        """12 hex digits of a hash over the config and the HRTF file's bytes."""
        hrtf = hashlib.sha256(check_hrtf(self.hrtf).read_bytes()).hexdigest()
        text = json.dumps({**asdict(self), "hrtf_sha256": hrtf, "format": 2}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RoomBank:
    """A loaded bank. `rirs`: (rooms, positions, 2 ears, taps) float32; room ids index axis 0."""

    config: RoomBankConfig
    rirs: np.ndarray
    dims: np.ndarray  # (rooms, 3) m
    rt60: np.ndarray  # (rooms,) s, the target RT60
    head: np.ndarray  # (rooms, 3) m
    azimuth: np.ndarray  # (rooms,) degrees, where the listener faces
    sources: np.ndarray  # (rooms, positions, 3) m

    @property
    def train_rooms(self) -> list[int]:
        return list(range(self.config.n_train))

    @property
    def test_rooms(self) -> list[int]:
        return list(range(self.config.n_train, self.config.n_rooms))


def check_hrtf(path: str | Path) -> Path:
    """Return `path` if it is a readable two-ear SOFA HRTF file; raise ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        hint = " (install the Debian package libmysofa1)" if str(path) == KEMAR_SOFA else ""
        raise ValueError(f"HRTF file {path} not found{hint}")
    try:
        import netCDF4

        with netCDF4.Dataset(str(path)) as data:
            convention = getattr(data, "SOFAConventions", None)
            ears = data.dimensions["R"].size if "R" in data.dimensions else None
    except (OSError, RuntimeError) as err:
        raise ValueError(f"HRTF file {path} is not a readable SOFA file ({err})") from err
    if convention is None or ears != 2:
        raise ValueError(
            f"HRTF file {path} is not a two-ear SOFA HRTF "
            f"(SOFAConventions {convention}, {ears} ears)"
        )
    return path


def _load_hrtf(config: RoomBankConfig) -> dict:
    """One pyroomacoustics directivity per ear (each costs ~0.8 s to build: once, then rotate)."""
    from pyroomacoustics.directivities import MeasuredDirectivityFile, Rotation3D

    with warnings.catch_warnings():  # resampling-backend notice: scipy's resample_poly is fine
        warnings.simplefilter("ignore", UserWarning)
        sofa = MeasuredDirectivityFile(
            str(check_hrtf(config.hrtf)), fs=config.sample_rate, mic_labels=["left", "right"]
        )
    front = Rotation3D([90.0, 0.0], "yz", degrees=True)
    return {ear: sofa.get_mic_directivity(ear, front) for ear in ("left", "right")}


def _draw_room(config: RoomBankConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Room geometry, RT60, listener and source positions for one room."""
    import pyroomacoustics as pra

    for _ in range(100):
        dims = np.array([rng.uniform(*config.width), rng.uniform(*config.depth)])
        dims = np.append(dims, rng.uniform(*config.height))
        rt60 = rng.uniform(*config.rt60)
        try:
            absorption, _ = pra.inverse_sabine(rt60, dims)
        except ValueError:  # the room is too large for this RT60: draw again
            continue
        break
    else:
        raise ValueError(
            f"RT60 range {config.rt60} s is unreachable for rooms of {config.width} x "
            f"{config.depth} x {config.height} m: raise the RT60 range or shrink the rooms"
        )
    low = np.full(3, WALL_MARGIN)
    head = np.append(rng.uniform(low[:2], dims[:2] - WALL_MARGIN), rng.uniform(*HEAD_HEIGHT))
    top = dims - WALL_MARGIN
    top[2] = min(MAX_SOURCE_HEIGHT, top[2])
    sources = []
    while len(sources) < config.positions:
        p = rng.uniform(low, top)
        if np.linalg.norm(p - head) >= MIN_SOURCE_DISTANCE:
            sources.append(p)
    return {
        "dims": dims,
        "rt60": np.float64(rt60),
        "absorption": np.float64(absorption),
        "head": head,
        "azimuth": np.float64(rng.uniform(0.0, 360.0)),
        "sources": np.stack(sources),
    }


def simulate_room(
    config: RoomBankConfig, index: int, hrtf: dict | None = None
) -> dict[str, np.ndarray]:
    """Draw and simulate room `index` of the bank; returns its geometry and `rirs` (P, 2, taps)."""
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import Rotation3D

    room_seed = np.random.SeedSequence([config.seed, index])
    rng = np.random.default_rng(room_seed)
    geo = _draw_room(config, rng)
    pra.random.seed(numpy=int(room_seed.generate_state(1)[0]), libroom=int(rng.integers(2**63)))
    hrtf = hrtf if hrtf is not None else _load_hrtf(config)
    room = pra.ShoeBox(
        geo["dims"],
        fs=config.sample_rate,
        materials=pra.Material(float(geo["absorption"])),
        max_order=config.max_order,
        ray_tracing=True,
        air_absorption=True,
    )
    room.set_ray_tracing(n_rays=config.rays, receiver_radius=0.5, time_thres=config.rir_seconds)
    orientation = Rotation3D([90.0, float(geo["azimuth"])], "yz", degrees=True)
    for ear in ("left", "right"):
        directivity = copy.copy(hrtf[ear])
        directivity.set_orientation(orientation)
        room.add_microphone(geo["head"], directivity=directivity)
    for p in geo["sources"]:
        room.add_source(p)
    room.compute_rir()
    rirs = np.zeros((config.positions, 2, config.taps), np.float32)
    for ear in range(2):
        for s in range(config.positions):
            h = np.asarray(room.rir[ear][s])[: config.taps]
            rirs[s, ear, : len(h)] = h
    for s in range(config.positions):
        rirs[s] = binaural_coherence(rirs[s], config.sample_rate)
    geo["rirs"] = rirs
    return geo


def binaural_coherence(rir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Give the late tail of a (2, T) response the diffuse-field interaural coherence.

    Per frequency bin the two tails are mixed by a symmetric rotation, x_l = cos(a) L + sin(a) R,
    x_r = sin(a) L + cos(a) R with sin(2a) = sinc(2 pi f d / c): uncorrelated tails of equal power
    get exactly that coherence and keep their power. A 5 ms crossfade joins the early part.
    """
    direct = int(np.argmax(np.abs(rir).sum(0)))
    start = direct + round(MIXING_MS * sample_rate / 1000)
    if start >= rir.shape[1]:
        return rir
    tail = np.fft.rfft(rir[:, start:].astype(np.float64), axis=-1)
    f = np.fft.rfftfreq(rir.shape[1] - start, 1.0 / sample_rate)
    angle = 0.5 * np.arcsin(np.sinc(2.0 * f * HEAD_WIDTH / SPEED_OF_SOUND))
    c, s = np.cos(angle), np.sin(angle)
    mixed = np.fft.irfft(np.stack([c * tail[0] + s * tail[1], s * tail[0] + c * tail[1]]),
                         n=rir.shape[1] - start, axis=-1)  # fmt: skip
    fade = np.clip(np.arange(mixed.shape[1]) / (0.005 * sample_rate), 0.0, 1.0)
    out = rir.astype(np.float64)
    out[:, start:] = (1 - fade) * out[:, start:] + fade * mixed
    return out.astype(rir.dtype)


def _worker_init(config: RoomBankConfig) -> None:
    global _WORKER_HRTF
    _WORKER_HRTF = _load_hrtf(config)


def _worker_room(args: tuple[RoomBankConfig, int]) -> dict[str, np.ndarray]:
    config, index = args
    return simulate_room(config, index, _WORKER_HRTF)


_WORKER_HRTF = None


def bank_dir(config: RoomBankConfig, root: Path | None = None) -> Path:
    return (root or scenes_dir()) / f"rooms-{config.key()}"


def load_room_bank(config: RoomBankConfig, workers: int = 0, root: Path | None = None) -> RoomBank:
    """Load the bank for `config`, building and caching it first if needed (tqdm bar).

    `workers`: processes for the build (0 = all cores); the result does not depend on it.
    """
    folder = bank_dir(config, root)
    path = folder / "bank.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        workers = min(workers or os.cpu_count() or 1, config.n_rooms)
        jobs = [(config, i) for i in range(config.n_rooms)]
        desc = f"room bank {folder.name}"
        if workers == 1:
            hrtf = _load_hrtf(config)
            rooms = [simulate_room(config, i, hrtf) for i in tqdm(range(config.n_rooms), desc=desc)]
        else:
            with get_context("spawn").Pool(workers, _worker_init, (config,)) as pool:
                rooms = list(tqdm(pool.imap(_worker_room, jobs), total=len(jobs), desc=desc))
        fields = ("rirs", "dims", "rt60", "head", "azimuth", "sources")
        _save_npz(path, **{f: np.stack([r[f] for r in rooms]) for f in fields})
        info = {**asdict(config), "key": config.key()}
        write_text(folder / "bank.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    with np.load(path) as data:
        return RoomBank(config=config, **{k: data[k] for k in data.files})


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))
