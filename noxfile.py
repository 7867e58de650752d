"""The user's entry points: `nox -s tests`, `nox -s lint`, `nox -s validate`, `nox -s bench`, ...

Every dependency is installed from a lock in `locks/` (exact versions and sha256 hashes, resolved
for Python >= 3.10 on every platform by `nox -s lock`), with uv. Each lock has one virtualenv per
machine and Python version under `$HEAR_WAVJEPA_HOME/venvs/`: torch + torchaudio are a ~4.9 GB
CUDA build on Linux, so all torch sessions share `venvs/torch-pyX.Y`, and this checkout is
installed into it in editable mode. Before every use a venv is compared with its lock (installed
names and versions); one that differs is synced back to the lock, and `nox -s check-venvs` (run
first by CI) fails naming what differs instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import nox
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).resolve().parent
LOCKS = ROOT / "locks"
HOME = Path(
    os.environ.get("HEAR_WAVJEPA_HOME", Path.home() / ".cache" / "hear-wavjepa")
).expanduser()
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
#: venv name -> its lock (the venv holds exactly the lock's packages for this interpreter).
VENV_LOCKS = {
    "torch": "torch.txt",
    "lint": "lint.txt",
    "validator": "validator.txt",
    "oracle": "oracle.txt",
}
#: the project itself, installed from the checkout into the torch venv (not a locked dependency)
PROJECT = "hear-wavjepa"
#: the lowest Python the project supports: every lock is resolved for it and all newer ones
MIN_PYTHON = "3.10"
UV = str(Path(sys.executable).parent / "uv")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def venv_dir(name: str) -> Path:
    return HOME / "venvs" / f"{name}-py{PY}"


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{PY}" / "site-packages"


def locked_versions(lock: Path) -> dict[str, str]:
    """The lock's packages for this interpreter and platform: {normalised name: version}."""
    text = lock.read_text().replace("\\\n", " ")
    env = default_environment()
    wanted: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(" --hash", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            (spec,) = req.specifier
            wanted[canonicalize_name(req.name)] = spec.version
    return wanted


def installed_versions(venv: Path) -> dict[str, str]:
    """What the venv's own site-packages hold (not what a layered venv adds): {name: version}."""
    dists = metadata.distributions(path=[str(_site_packages(venv))])
    return {canonicalize_name(d.metadata["Name"]): d.version for d in dists}


def venv_drift(venv: Path, lock: Path) -> list[str]:
    """How `venv` differs from `lock` (and its `-nodeps` companion, packages installed without
    their declared dependencies), one line per package; empty when they are equal."""
    want = locked_versions(lock)
    nodeps = lock.with_name(f"{lock.stem}-nodeps.txt")
    if nodeps.is_file():
        want.update(locked_versions(nodeps))
    have = installed_versions(venv)
    have.pop(PROJECT, None)
    lines = []
    for name in sorted(want.keys() | have.keys()):
        if name not in have:
            lines.append(f"{name}: missing (lock: {want[name]})")
        elif name not in want:
            lines.append(f"{name}: installed {have[name]}, not in the lock")
        elif have[name] != want[name]:
            lines.append(f"{name}: installed {have[name]}, lock: {want[name]}")
    return lines


def locked_venv(session: nox.Session, name: str) -> Path:
    """The venv of lock `name`, created or synced so that it holds exactly the lock."""
    venv, lock = venv_dir(name), LOCKS / VENV_LOCKS[name]
    python = venv / "bin" / "python"
    if not python.exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        session.run(UV, "venv", "-q", "--python", sys.executable, str(venv), external=True)
    stamp, digest = venv / ".lock-sha256", _digest(lock)
    drift = venv_drift(venv, lock)
    if _stamp(venv) != digest:
        drift = drift or [f"made from another version of {lock.name}"]
    if _stamp(venv) is None:
        session.log(f"installing {venv} from locks/{lock.name}")
    elif drift:
        shown = "; ".join(drift[:5]) + (f"; and {len(drift) - 5} more" if len(drift) > 5 else "")
        session.log(f"{venv} differs from locks/{lock.name} ({shown}): syncing it to the lock")
    if drift:
        uv_env = {"VIRTUAL_ENV": str(venv)}
        args = ["pip", "sync", "-q", "--require-hashes", "--python", str(python), str(lock)]
        session.run(UV, *args, external=True, env=uv_env)
        for extra in sorted(LOCKS.glob(f"{name}-nodeps.txt")):
            args = ["pip", "install", "-q", "--no-deps", "--require-hashes", "--python"]
            session.run(UV, *args, str(python), "-r", str(extra), external=True)
        _atomic_write(stamp, digest)
    return python


def torch_python(session: nox.Session) -> str:
    """The torch venv's interpreter, with this checkout installed (editable) into it."""
    python = locked_venv(session, "torch")
    if _editable_root(python) != ROOT:
        args = ["pip", "install", "-q", "--no-deps", "--no-build-isolation", "--python"]
        session.run(UV, *args, str(python), "-e", str(ROOT), external=True)
    return str(python)


def _editable_root(python: Path) -> Path | None:
    """The checkout whose `hear_wavjepa` the venv imports, without importing it (no torch)."""
    code = "import importlib.util as u; s = u.find_spec('hear_wavjepa'); print(s and s.origin)"
    out = subprocess.run(  # -I: the current folder (maybe a checkout) is not on the path
        [str(python), "-I", "-c", code], capture_output=True, text=True, check=False, cwd="/"
    )
    origin = out.stdout.strip()
    return Path(origin).parent.parent if origin not in ("", "None") else None


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


@nox.session(name="check-venvs")
def check_venvs(session: nox.Session) -> None:
    """Fail when a venv differs from the lock it was built from, naming each package that differs
    (CI runs this first; every other session would silently sync the venv back). A venv built
    from an older version of its lock (its stamp differs) is synced to the current lock first:
    that is an update, not drift."""
    problems = []
    for name, lock in VENV_LOCKS.items():
        venv = venv_dir(name)
        if not (venv / "bin" / "python").exists():
            session.log(f"{venv}: not built yet (it is made from locks/{lock} on first use)")
            continue
        if _stamp(venv) != _digest(LOCKS / lock):
            session.log(f"{venv}: built from an older locks/{lock}; syncing it")
            locked_venv(session, name)
        drift = venv_drift(venv, LOCKS / lock)
        if drift:
            problems.append(f"{venv} differs from locks/{lock}:\n  " + "\n  ".join(drift))
        else:
            session.log(f"{venv}: equal to locks/{lock}")
    if problems:
        fix = "a session syncs it back (e.g. ./nox.sh -s tests), or remove the venv to rebuild it"
        session.error("\n".join(problems) + f"\n{fix}")


def _stamp(venv: Path) -> str | None:
    """The digest of the lock the venv was last synced to (None if never)."""
    stamp = venv / ".lock-sha256"
    return stamp.read_text() if stamp.is_file() else None


def _digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


@nox.session
def lock(session: nox.Session) -> None:
    """Re-resolve every lock in locks/ (all platforms, Python >= 3.10) with sha256 hashes.
    `-- --upgrade` takes the newest releases allowed; without it, pinned versions are kept."""
    compile_ = [UV, "pip", "compile", "-q", "--universal", "--generate-hashes"]
    compile_ += ["--python-version", MIN_PYTHON, "--no-header", *session.posargs]
    torch_lock = LOCKS / "torch.txt"
    session.run(*compile_, "pyproject.toml", "--extra", "dev", "-o", str(torch_lock), external=True)
    for name in ("nox", "lint", "validator"):
        out = LOCKS / f"{name}.txt"
        session.run(*compile_, str(LOCKS / f"{name}.in"), "-o", str(out), external=True)
    # oracle: resolved against the torch lock, whose packages it takes from the torch venv
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "oracle.txt"
        session.run(
            *compile_,
            str(LOCKS / "oracle.in"),
            "-c",
            str(torch_lock),
            "-o",
            str(full),
            external=True,
        )
        _write_without(full, set(locked_versions(torch_lock)), LOCKS / "oracle.txt")
    for name in ("validator", "oracle"):
        _pin_nodeps(session, LOCKS / f"{name}-nodeps.in", LOCKS / f"{name}-nodeps.txt")


def _write_without(lock: Path, drop: set[str], out: Path) -> None:
    """Copy `lock` without the entries of the packages in `drop` (each entry: a line + hashes)."""
    kept, skipping = [], False
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            skipping = canonicalize_name(line.split("=", 1)[0].split(" ", 1)[0]) in drop
        if not skipping:
            kept.append(line)
    _atomic_write(out, "\n".join(kept) + "\n")


def _pin_nodeps(session: nox.Session, spec: Path, out: Path) -> None:
    """Hash-pin packages installed without their declared dependencies (their metadata asks
    for Pythons and versions that no longer exist; their real needs are in the main lock)."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in spec.read_text().split():
            session.run(
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--ignore-requires-python",
                "--only-binary",
                ":all:",
                "-d",
                tmp,
                requirement,
                external=True,
            )
            (wheel,) = [w for w in Path(tmp).glob("*.whl") if w.name not in str(lines)]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{requirement} --hash=sha256:{digest}")
    _atomic_write(out, "\n".join(lines) + "\n")


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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check, and the layer contract (import-linter); locks/lint.txt."""
    bin_ = locked_venv(session, "lint").parent
    session.run(str(bin_ / "ruff"), "check", ".", external=True)
    session.run(str(bin_ / "ruff"), "format", "--check", ".", external=True)
    # the layer contract of pyproject.toml [tool.importlinter]; the checkout is found through
    # PYTHONPATH, so the lint venv keeps exactly its lock
    session.run(str(bin_ / "lint-imports"), external=True, env={"PYTHONPATH": str(ROOT)})


@nox.session
def validate(session: nox.Session) -> None:
    """Real hear-validator runs: hear_wavjepa (untrained, a tiny checkpoint, and a tiny model in
    the hub's layout of the released weights, imported in memory) and HEAR-Naive."""
    torch_py = torch_python(session)
    python = locked_venv(session, "validator")
    _layer_on_torch_venv(python, torch_py)
    validator = str(python.parent / "hear-validator")
    env = {"HEAR_WAVJEPA_WEIGHTS": ""}
    session.run(validator, "hear_wavjepa", external=True, env=env)
    checkpoint = HOME / "validate" / "tiny.safetensors"
    session.run(torch_py, "-m", "hear_wavjepa", "init", "tiny", str(checkpoint), external=True)
    session.run(validator, "hear_wavjepa", "-m", str(checkpoint), external=True, env=env)
    snapshot = HOME / "validate" / "hub-snapshot"
    write_hub = (
        "import sys, pathlib, torch; from reference_layout import ReferenceLikeJEPA, "
        "write_hub_snapshot; from hear_wavjepa.model import preset; torch.manual_seed(1); "
        "write_hub_snapshot(ReferenceLikeJEPA(preset('tiny')), pathlib.Path(sys.argv[1]))"
    )
    tests = {"PYTHONPATH": str(ROOT / "tests")}
    session.run(torch_py, "-c", write_hub, str(snapshot), external=True, env=tests)
    hub_file = str(snapshot / "model.safetensors")
    session.run(validator, "hear_wavjepa", "-m", hub_file, external=True, env=env)
    session.run(validator, "hear_wavjepa.baselines.naive", external=True)


@nox.session
def wheel(session: nox.Session) -> None:
    """`pip install .` (a built wheel, not editable) into a fresh venv, then use it from a folder
    outside the checkout: info, build-mini, eval, the HEAR API and hear-validator."""
    ensure_apt(session, apt_packages())
    with tempfile.TemporaryDirectory(prefix="hear-wavjepa-wheel-") as tmp:
        venv, work = Path(tmp) / "venv", Path(tmp) / "work"
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        python = str(venv / "bin" / "python")
        lock = str(LOCKS / "torch.txt")
        session.run(UV, "pip", "install", "-q", "--require-hashes", "--python", python, "-r", lock,
                    external=True)  # fmt: skip
        session.run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    str(ROOT), external=True)  # fmt: skip
        work.mkdir()
        session.chdir(work)
        cli = str(venv / "bin" / "hear-wavjepa")
        session.run(cli, "info", external=True)
        tasks = work / "mini"
        session.run(cli, "tasks", "build-mini", str(tasks), "--scale", "0.05",
                    "--only", "m-SC", "m-DCASE", external=True)  # fmt: skip
        checkpoint = work / "tiny.safetensors"
        session.run(cli, "init", "tiny", str(checkpoint), external=True)
        session.run(cli, "eval", "--suite", "mini", "--tasks-dir", str(tasks), "--models",
                    f"tiny={checkpoint}", "--protocols", "linear", "--results-dir",
                    str(work / "results"), external=True)  # fmt: skip
        api = (
            "import hear_wavjepa, torch, sys; m = hear_wavjepa.load_model(sys.argv[1]);"
            "e = hear_wavjepa.get_scene_embeddings(torch.zeros(2, 16000), m);"
            "assert 'site-packages' in hear_wavjepa.__file__, hear_wavjepa.__file__;"
            "print('HEAR API from', hear_wavjepa.__file__, tuple(e.shape))"
        )
        session.run(python, "-c", api, str(checkpoint), external=True)
        validator = locked_venv(session, "validator")
        # the wheel venv's site-packages go first on the path; the validator venv's own link to
        # the shared torch venv stays as it is
        env = {"HEAR_WAVJEPA_WEIGHTS": "", "PYTHONPATH": str(_site_packages(venv))}
        session.run(str(validator.parent / "hear-validator"), "hear_wavjepa", "-m",
                    str(checkpoint), external=True, env=env)  # fmt: skip


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


@nox.session(name="same-behaviour")
def same_behaviour(session: nox.Session) -> None:
    """`-- BEFORE AFTER`: the same checkpoint, embedding caches, Nat folder and tables, and every
    command and flag, at two git revisions (tests/benchmarks/same_behaviour.py)."""
    python = torch_python(session)
    script = str(ROOT / "tests" / "benchmarks" / "same_behaviour.py")
    session.run(python, script, *(session.posargs or ["HEAD", "HEAD"]), external=True)


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
    if args and "=" not in args[0]:
        args[0] = f"data.path={args[0]}"
    session.run(cli, "pretrain", "--demo", *args, external=True)
    run = HOME / "runs" / "tiny-cpu"
    model, init = run / "model.safetensors", run / "init.safetensors"
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


@nox.session
def oracle(session: nox.Session) -> None:
    """heareval 2021.1.3 against our HEAR MLP protocol on four small mini-task caches:
    `-- [--tasks multiclass,kfold,multilabel,event] [--grid G] [--grid-points N]`.
    heareval's runner without TensorFlow (locks/oracle.txt); torch comes from the torch venv."""
    torch_py = torch_python(session)
    python = locked_venv(session, "oracle")
    _layer_on_torch_venv(python, torch_py)
    helpers = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "tests" / "oracle")])
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONPATH": helpers}
    script = str(ROOT / "tests" / "oracle" / "oracle.py")
    session.run(torch_py, script, *session.posargs, external=True, env=env)
