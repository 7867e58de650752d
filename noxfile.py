"""The user's entry points: `nox -s tests`, `nox -s lint`, `nox -s validate`, `nox -s bench`, ...

Every session that needs torch runs in ONE virtualenv per machine and Python version,
`$HEAR_WAVJEPA_HOME/venvs/torch-2.11-pyX.Y` (torch + torchaudio are a ~4.6 GB CUDA build on Linux,
so they are installed once, not once per session). The package is installed into it in editable
mode from the checkout that runs the session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).resolve().parent
HOME = Path(
    os.environ.get("HEAR_WAVJEPA_HOME", Path.home() / ".cache" / "hear-wavjepa")
).expanduser()
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TORCH_VENV = HOME / "venvs" / f"torch-2.11-py{PY}"
VALIDATE_VENV = HOME / "venvs" / f"validator-py{PY}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _pip(session: nox.Session, python: Path | str, *args: str) -> None:
    session.run(str(python), "-m", "pip", "install", "-q", *args, external=True)


def _make_venv(session: nox.Session, venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        _pip(session, python, "-U", "pip", "setuptools>=77")
    return python


def torch_python(session: nox.Session) -> str:
    """The shared torch venv's interpreter, with this checkout installed (editable) into it."""
    python = _make_venv(session, TORCH_VENV)
    stamp = TORCH_VENV / ".hear-wavjepa-deps"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        session.log(f"installing hear-wavjepa and its dependencies into {TORCH_VENV}")
        _pip(session, python, "-e", f"{ROOT}[dev]")
        _atomic_write(stamp, want)
    else:  # dependencies are current: only point the editable install at this checkout
        _pip(session, python, "--no-deps", "--no-build-isolation", "-e", str(ROOT))
    return str(python)


def _layer_on_torch_venv(python: Path, torch_py: str) -> None:
    """Let venv `python` import torch and hear_wavjepa from the shared torch venv: its
    site-packages join the path after the venv's own, so torch is installed once per machine."""
    site_of = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    torch_site = subprocess.check_output([torch_py, "-c", site_of], text=True).strip()
    own_site = subprocess.check_output([str(python), "-c", site_of], text=True).strip()
    _atomic_write(
        Path(own_site) / "hear_wavjepa_torch_venv.pth",
        f"import site; site.addsitedir({torch_site!r})\n",
    )


def ensure_apt(session: nox.Session, packages: list[str]) -> None:
    """Install Debian packages when running as root; otherwise stop and print the exact command."""
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    command = "apt-get install -y --no-install-recommends " + " ".join(missing)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(f"missing system packages; run:\n  sudo apt-get update && sudo {command}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run(*command.split(), external=True, env=env)


def _dpkg_installed(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and out.stdout.strip().endswith("installed")


def apt_packages() -> list[str]:
    """Debian packages the task builders and scene renderer need (tasks/apt-packages*.txt)."""
    names: list[str] = []
    for path in sorted((ROOT / "tasks").glob("apt-packages*.txt")):
        for line in path.read_text().splitlines():
            name = line.split("#", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    return names


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny presets; base-size work lives in `bench`)."""
    ensure_apt(session, apt_packages())
    python = torch_python(session)
    session.run(python, "-m", "pytest", *session.posargs, external=True)


@nox.session
def info(session: nox.Session) -> None:
    """Print version, model presets (parameter counts) and the compute device."""
    python = torch_python(session)
    session.run(python, "-m", "hear_wavjepa", "info", external=True)


@nox.session(venv_backend="venv")
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check."""
    session.install("ruff==0.17.*")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def validate(session: nox.Session) -> None:
    """Real hear-validator runs: hear_wavjepa (untrained, tiny checkpoint) and HEAR-Naive."""
    torch_py = torch_python(session)
    python = _make_venv(session, VALIDATE_VENV)
    stamp = VALIDATE_VENV / ".hear-wavjepa-validator"
    if not stamp.exists():
        _pip(session, python, "tensorflow-cpu")
        _pip(session, python, "--no-deps", "--ignore-requires-python", "hearvalidator==2021.0.6")
        _atomic_write(stamp, "ok")
    _layer_on_torch_venv(python, torch_py)
    validator = str(VALIDATE_VENV / "bin" / "hear-validator")
    env = {"HEAR_WAVJEPA_WEIGHTS": ""}
    session.run(validator, "hear_wavjepa", external=True, env=env)
    checkpoint = HOME / "validate" / "tiny.safetensors"
    session.run(torch_py, "-m", "hear_wavjepa", "init", "tiny", str(checkpoint), external=True)
    session.run(validator, "hear_wavjepa", "-m", str(checkpoint), external=True, env=env)
    session.run(validator, "hear_wavjepa.baselines.naive", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under tests/benchmarks/ (print ratios measured side by side in one run)."""
    python = torch_python(session)
    scripts = sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py"))
    wanted = set(session.posargs)
    for script in scripts:
        if (
            wanted
            and script.stem not in wanted
            and script.stem.removeprefix("bench_") not in wanted
        ):
            continue
        # the benchmarks share the tests' helper modules (tests/, tests/oracle/)
        helpers = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "tests" / "oracle")])
        session.run(python, str(script), external=True, env={"PYTHONPATH": helpers})


@nox.session(name="build-tasks")
def build_tasks(session: nox.Session) -> None:
    """Build the offline mini-HEAR suite at default scale (`-- [OUT] [--scale S] ...` to change)."""
    ensure_apt(session, apt_packages())
    python = torch_python(session)
    cli = str(Path(python).parent / "hear-wavjepa")
    session.run(cli, "tasks", "build-mini", *(session.posargs or ["--overwrite"]), external=True)


@nox.session
def pretrain(session: nox.Session) -> None:
    """Pretrain the tiny preset on CPU (train/tiny-cpu.yaml) into runs/tiny-cpu, then print the
    linear-probe and kNN scores of the checkpoint next to its own random init (the run's step-0
    weights) on the mini suite.

    `-- [CORPUS] [key=value ...]`: CORPUS is a folder or glob of audio files or .tar shards
    (default: the offline corpus, $HEAR_WAVJEPA_HOME/corpus, built if missing).
    """
    cli = _hear_wavjepa(session)
    args = list(session.posargs)
    corpus = args.pop(0) if args and "=" not in args[0] else str(HOME / "corpus")
    if corpus == str(HOME / "corpus"):
        session.run(cli, "tasks", "build-corpus", corpus, external=True)
    run = HOME / "runs" / "tiny-cpu"
    model, init = run / "model.safetensors", run / "init.safetensors"
    if not (model.is_file() and init.is_file()):  # a finished run of an older version: exports init
        if run.is_dir():
            session.run(cli, "pretrain", "--resume", str(run), external=True)
        else:
            recipe = str(ROOT / "train" / "tiny-cpu.yaml")
            session.run(
                cli,
                "pretrain",
                "--config",
                recipe,
                f"data.path={corpus}",
                "train.name=tiny-cpu",
                *args,
                external=True,
            )
    probe = run / "probe"
    models = [
        f"wavjepa-tiny-init={init}",  # the weights the run started from
        f"wavjepa-tiny-pretrained={model}",
    ]
    session.run(
        cli,
        "eval",
        "--suite",
        "mini",
        "--models",
        *models,
        "--protocols",
        "linear,knn",
        "--results-dir",
        str(probe),
        external=True,
    )
    session.log((probe / "mini.md").read_text())


def _hear_wavjepa(session: nox.Session) -> str:
    ensure_apt(session, apt_packages())
    return str(Path(torch_python(session)).parent / "hear-wavjepa")


@nox.session(name="eval-nat-hear")
def eval_nat_hear(session: nox.Session) -> None:
    """The main job. No arguments: the offline mini suite, clean and Nat, with the default models
    (random-init tiny, pretrained tiny, HEAR-Naive). `-- --tasks-dir DIR [...]`: real HEAR tasks."""
    cli = _hear_wavjepa(session)
    args = session.posargs
    if "--tasks-dir" in args:
        suites = ["hear", "nat-hear"]
    else:
        suites = ["mini", "mini-nat"]
        args = _offline_grids(args)
    session.run(cli, "eval", "--suite", *suites, *args, external=True)


def _offline_grids(args: list[str]) -> list[str]:
    """The offline demo's MLP grids, so that it finishes in the README's time on 2 cores:
    heareval's `fast` grid for scene tasks and `faster` for the event task (30 s clips give
    ~72k training frames, which `fast`'s 1024-wide layers would train for most of an hour)."""
    if "--grid" not in args:
        args = ["--grid", "fast", *args]
    if "--event-grid" not in args:
        args = ["--event-grid", "faster", *args]
    return list(args)


@nox.session(name="eval-hear")
def eval_hear(session: nox.Session) -> None:
    """As eval-nat-hear, on the clean suite only."""
    cli = _hear_wavjepa(session)
    args = session.posargs
    suite = "hear" if "--tasks-dir" in args else "mini"
    if suite == "mini":
        args = _offline_grids(args)
    session.run(cli, "eval", "--suite", suite, *args, external=True)


@nox.session
def tables(session: nox.Session) -> None:
    """Regenerate results/*.md from stored scores alone (no model runs)."""
    cli = str(Path(torch_python(session)).parent / "hear-wavjepa")
    session.run(cli, "tables", *session.posargs, external=True)


ORACLE_VENV = HOME / "venvs" / f"oracle-py{PY}"
#: spec/hear.md §B.3, without TensorFlow; torch comes from the shared torch venv (a .pth line).
ORACLE_RECIPE = [
    "pytorch-lightning==1.9.5",
    "torchmetrics>=1.5",
    "setuptools<81",
    "sed_eval==0.2.1",
    "dcase_util==0.2.20",
    "click",
    "intervaltree",
    "more-itertools",
    "pandas",
    "python-slugify",
    "soundfile",
    "torchinfo",
    "tqdm",
    "scikit-learn",
    "scipy",
]


@nox.session
def oracle(session: nox.Session) -> None:
    """heareval 2021.1.3 against our HEAR MLP protocol on four small mini-task caches:
    `-- [--tasks multiclass,kfold,multilabel,event] [--grid G] [--grid-points N]`."""
    torch_py = torch_python(session)
    python = _make_venv(session, ORACLE_VENV)
    _layer_on_torch_venv(python, torch_py)
    stamp = ORACLE_VENV / ".hear-wavjepa-oracle"
    want = " ".join(ORACLE_RECIPE)
    if not stamp.exists() or stamp.read_text() != want:
        _pip(session, python, "--no-deps", "heareval==2021.1.3")
        _pip(session, python, *ORACLE_RECIPE)
        _atomic_write(stamp, want)
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    script = str(ROOT / "tests" / "oracle" / "oracle.py")
    session.run(torch_py, script, *session.posargs, external=True, env=env)
