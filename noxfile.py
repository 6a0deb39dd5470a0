"""Every package built into a wheel, installed from it, and tested in isolation.

``nox`` runs the default sessions; ``nox -s tests`` one kind; ``nox -R`` reuses venvs and installs.
torch is pinned by ``constraints.txt`` (an unpinned torch pulls several GB of CUDA wheels here).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
DIST = ROOT / "dist"
CONSTRAINTS = str(ROOT / "constraints.txt")
PACKAGES = {"core": "core", "loss-zoo": "swift-loss-zoo", "optim-zoo": "swift-optim-zoo"}
DISTRIBUTIONS = {"core": "swift-zoo-core", "loss-zoo": "swift-loss-zoo", "optim-zoo": "swift-optim-zoo"}
EXAMPLE_PLUGIN = ROOT / "examples" / "my-swift-loss"

nox.options.sessions = [
    "lint", "build", "tests", "entry_points", "conformance", "catalogue", "third_party", "examples",
    "distributed", "benchmarks_smoke",
]


def version_of(folder: str | Path) -> str:
    about = next((Path(folder) / "src").glob("*/__about__.py"))
    return re.search(r'__version__ = "([^"]+)"', about.read_text()).group(1)


def wheel(distribution: str) -> str:
    stem = distribution.replace("-", "_")
    found = sorted(DIST.glob(f"{stem}-*.whl"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"no wheel for {distribution} in {DIST}: run `nox -s build` first")
    return str(found[-1])


def install_torch(session: nox.Session) -> None:
    session.install("-c", CONSTRAINTS, "torch==2.13.0")


def install_wheels(session: nox.Session, *distributions: str, extras: str = "") -> None:
    """Install wheels with their dependencies (constrained), then force the freshly built files."""
    wheels = [wheel(d) for d in distributions]
    first = [w + extras if i == 0 and extras else w for i, w in enumerate(wheels)]
    session.install("-c", CONSTRAINTS, *first)
    session.install("--no-deps", "--force-reinstall", *wheels)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")


@nox.session
def build(session: nox.Session) -> None:
    """Build every wheel into dist/ (the zoos, the core and the third-party example)."""
    session.install("-c", CONSTRAINTS, "hatchling")
    if DIST.exists():
        shutil.rmtree(DIST)
    DIST.mkdir()
    folders = [ROOT / f for f in PACKAGES.values()]
    if EXAMPLE_PLUGIN.exists():
        folders.append(EXAMPLE_PLUGIN)
    for folder in folders:
        with session.chdir(folder):
            session.run("python", "-m", "hatchling", "build", "-t", "wheel", "-d", str(DIST))


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package's tests in its own venv, the package installed from its wheel (not editable)."""
    install_torch(session)
    # core's conformance meta-tests use the zoos' cross_entropy and adamw as known-good plugins
    dists = list(DISTRIBUTIONS.values()) if package == "core" else ["swift-zoo-core", DISTRIBUTIONS[package]]
    install_wheels(session, *dists, extras="[testing,hf]" if package == "core" else "[testing]")
    session.install("-c", CONSTRAINTS, "pytest", "numpy")  # numpy: float64 reference loops in tests
    session.run("python", "-m", "pytest", str(ROOT / PACKAGES[package] / "tests"), "-q",
                "-p", "no:cacheprovider", *session.posargs)


@nox.session(reuse_venv=False)
def entry_points(session: nox.Session) -> None:
    """Fresh venv, wheels only, no torch: both zoos listed ok with their versions; uninstall one, gone."""
    session.install("-c", CONSTRAINTS, "pluggy", "PyYAML")
    session.install("--no-deps", wheel("swift-zoo-core"), wheel("swift-loss-zoo"), wheel("swift-optim-zoo"))
    check = [str(ROOT / "tools" / "check_entry_points.py")]
    loss_version, optim_version = version_of(ROOT / "swift-loss-zoo"), version_of(ROOT / "swift-optim-zoo")
    session.run("python", *check, f"--present=swift-loss-zoo={loss_version}",
                f"--present=swift-optim-zoo={optim_version}",
                "--provides=swift-loss-zoo:cross_entropy", "--provides=swift-optim-zoo:adamw")
    session.run("python", "-m", "pip", "uninstall", "-y", "-q", "swift-loss-zoo")
    session.run("python", *check, f"--present=swift-optim-zoo={optim_version}", "--absent=swift-loss-zoo")


@nox.session
def conformance(session: nox.Session) -> None:
    """`swift-zoo check` over both zoos, from their wheels."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    session.run("swift-zoo", "check", "swift-loss-zoo")
    session.run("swift-zoo", "check", "swift-optim-zoo")


@nox.session
def catalogue(session: nox.Session) -> None:
    """docs/losses.md is what the registry generates."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo")
    script = ROOT / "swift-loss-zoo" / "scripts" / "gen_catalogue.py"
    if script.exists():
        session.run("python", str(script), "--check")
    else:
        session.skip("no catalogue generator yet")


@nox.session
def third_party(session: nox.Session) -> None:
    """The outside author's path: the example plugin's wheel beside the core wheel, its tests, `swift-zoo check`."""
    if not EXAMPLE_PLUGIN.exists():
        session.skip("examples/my-swift-loss not present")
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "my-swift-loss")
    session.install("-c", CONSTRAINTS, "pytest")
    session.run("python", "-m", "pytest", str(EXAMPLE_PLUGIN / "tests"), "-q", "-p", "no:cacheprovider")
    session.run("swift-zoo", "check", "my-swift-loss")


@nox.session
def benchmarks_smoke(session: nox.Session) -> None:
    """Each benchmark script in --quick mode, so none of them rots (numbers: run them without --quick)."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    session.install("-c", CONSTRAINTS, "matplotlib")
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), "--quick")


# Other libraries' implementations for the side-by-side benchmarks (benchmarks/_peers.py), installed without
# their dependencies: timm's torchvision and cut-cross-entropy's triton do not load beside this CPU torch build
# (the benchmarks import the modules that do not need them); the dependencies that are needed come below.
PEER_PACKAGES = (
    "pytorch-optimizer", "heavyball", "timm", "lion-pytorch", "schedulefree", "galore-torch", "apollo-torch",
    "adam-mini", "torchao", "bitsandbytes", "cut-cross-entropy",
)
PEER_DEPENDENCIES = ("numpy", "opt-einsum", "typing-extensions", "packaging", "transformers", "matplotlib")
PEER_BENCHMARKS = {
    "fused_linear_ce": ["benchmarks/bench_fused_linear_ce.py"],
    "optimizers": ["benchmarks/bench_optimizers.py", "--peers"],
}


@nox.session
def benchmarks_peers(session: nox.Session) -> None:
    """Our losses and optimizers beside other libraries' (not a default session: it downloads the peers and runs
    for about an hour). ``nox -s benchmarks_peers`` runs both; ``nox -s benchmarks_peers -- optimizers --only
    muon`` one script with its arguments. Versions are pinned in constraints.txt; torch stays 2.13.0."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    session.install("-c", CONSTRAINTS, *PEER_DEPENDENCIES)
    session.install("-c", CONSTRAINTS, "--no-deps", *PEER_PACKAGES)
    chosen = [session.posargs[0]] if session.posargs else list(PEER_BENCHMARKS)
    if chosen[0] not in PEER_BENCHMARKS:
        session.error(f"expected one of {sorted(PEER_BENCHMARKS)} as the first argument, got {chosen[0]!r}")
    for name in chosen:
        script, *flags = PEER_BENCHMARKS[name]
        session.run("python", str(ROOT / script), *flags, *session.posargs[1:])


@nox.session
def examples(session: nox.Session) -> None:
    """Every training config learns as its proof says (and the HF Trainer example), from the wheels."""
    if not (ROOT / "examples" / "tests").exists():
        session.skip("examples/tests not present")
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo", extras="[hf]")
    session.install("-c", CONSTRAINTS, "pytest", "matplotlib", "tqdm")
    session.run("python", "-m", "pytest", str(ROOT / "examples" / "tests"), "-q", "-p", "no:cacheprovider",
                *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """Two gloo processes: global num_items_in_batch gives the single-process gradients; optimizers agree."""
    if not (ROOT / "tests_distributed").exists():
        session.skip("tests_distributed not present")
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    session.install("-c", CONSTRAINTS, "pytest")
    session.run("python", "-m", "pytest", str(ROOT / "tests_distributed"), "-q", "-p", "no:cacheprovider",
                *session.posargs)
