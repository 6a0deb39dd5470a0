"""Every package built into a wheel, installed from it, and tested in isolation.

``nox`` runs the default sessions; ``nox -s tests`` one kind; ``nox -R`` reuses venvs and skips installs.
torch is pinned by ``constraints.txt`` (an unpinned torch pulls several GB of CUDA wheels here).

The quick loop while editing is the ``dev`` session: one venv with the three packages installed editable,
so it always tests the working tree (``nox -s dev`` once, then ``nox -R -s dev -- core/tests -k name``).
``tests`` tests the built wheels: it refuses a wheel older than its package's sources (run ``nox -s build``)
and reinstalls the current wheels even under ``-R``, so a stale build never passes for the working tree.
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
CONSTRAINTS_TRL = str(ROOT / "constraints-trl.txt")
PACKAGES = {"core": "core", "loss-zoo": "swift-loss-zoo", "optim-zoo": "swift-optim-zoo"}
DISTRIBUTIONS = {"core": "swift-zoo-core", "loss-zoo": "swift-loss-zoo", "optim-zoo": "swift-optim-zoo"}
EXAMPLE_PLUGIN = ROOT / "examples" / "my-swift-loss"
MS_SWIFT_DIST = ROOT / "swift-zoo-ms-swift"
MS_SWIFT_CONSTRAINTS = str(ROOT / "constraints-ms-swift.txt")  # ms-swift 4.6 pins trl<1.0, transformers<5.20

nox.options.sessions = [
    "lint", "build", "tests", "entry_points", "conformance", "catalogue", "third_party", "examples",
    "distributed", "references", "benchmarks_smoke", "trl", "ms_swift",
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


def sources_newer_than(folder: str | Path, built: str | Path) -> list[Path]:
    """The files under ``folder``'s ``src/`` (and its ``pyproject.toml``) changed after ``built`` was made."""
    stamp = Path(built).stat().st_mtime
    candidates = [*(Path(folder) / "src").rglob("*"), Path(folder) / "pyproject.toml"]
    return sorted(p for p in candidates if p.is_file() and "__pycache__" not in p.parts and p.stat().st_mtime > stamp)


def current_wheel(session: nox.Session, distribution: str) -> str:
    """The newest wheel of ``distribution``; the session fails when its package's sources are newer."""
    built = wheel(distribution)
    folder = next((ROOT / f for k, f in PACKAGES.items() if DISTRIBUTIONS[k] == distribution), None)
    changed = sources_newer_than(folder, built) if folder is not None else []
    if changed:
        shown = ", ".join(str(p.relative_to(ROOT)) for p in changed[:3]) + (" ..." if len(changed) > 3 else "")
        session.error(f"{Path(built).name} is older than {len(changed)} source file(s) ({shown}): run `nox -s build` "
                      "first, or test the working tree with the dev session")
    return built


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
    if MS_SWIFT_DIST.exists():
        folders.append(MS_SWIFT_DIST)
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
    wheels = [current_wheel(session, d) for d in dists]
    install_wheels(session, *dists, extras="[testing,hf]" if package == "core" else "[testing]")
    session.install("-c", CONSTRAINTS, "pytest", "numpy")  # numpy: float64 reference loops in tests
    # not session.install: under -R (no installs) the venv would keep whatever wheel it got last time
    session.run("python", "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", *wheels)
    session.run("python", "-m", "pytest", str(ROOT / PACKAGES[package] / "tests"), "-q",
                "-p", "no:cacheprovider", *session.posargs)


@nox.session
def dev(session: nox.Session) -> None:
    """The quick loop: the three packages installed editable in one venv, so the working tree is what runs.

    ``nox -s dev`` (first time: installs), then ``nox -R -s dev -- core/tests -x -k registry``; without
    arguments it runs the tests of all three packages. Not a substitute for ``tests``, which tests the wheels.
    """
    install_torch(session)
    session.install("-c", CONSTRAINTS, "-e", f"{ROOT / 'core'}[testing,hf]", "-e", str(ROOT / "swift-loss-zoo"),
                    "-e", str(ROOT / "swift-optim-zoo"), "pytest", "numpy")
    targets = session.posargs or [str(ROOT / folder / "tests") for folder in PACKAGES.values()]
    with session.chdir(ROOT):
        session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets)


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
    """docs/losses.md and the tables of docs/distributed.md are what the registry generates."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    script = ROOT / "swift-loss-zoo" / "scripts" / "gen_catalogue.py"
    if script.exists():
        session.run("python", str(script), "--check")
    session.run("python", str(ROOT / "tools" / "gen_distributed_docs.py"), "--check")


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
def references(session: nox.Session) -> None:
    """Every declared equivalence with TRL, verl, ms-swift and the optimizer references, compared numerically."""
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")
    folder = ROOT / "tests_references"
    constraints = str(ROOT / "constraints-references.txt")
    session.install("-c", constraints, "pytest", "numpy")
    for requirements, flags in (("requirements.txt", ()), ("requirements-nodeps.txt", ("--no-deps",))):
        lines = [line for line in (folder / requirements).read_text().splitlines() if line.strip() and not line.startswith("#")]
        if lines:
            session.install("-c", constraints, *flags, "-r", str(folder / requirements))
    # verl (--no-deps) and the light packages its core_algos imports must leave the pinned CPU torch in place
    session.run("python", "-c", "import torch; v = torch.__version__.split('+')[0]; "
                "assert v == '2.13.0', f'the reference packages replaced torch 2.13.0 with {v}'")
    session.run("python", "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider", "-rs", *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """gloo processes on CPU: DDP normalisation and rank identity; every optimizer under FSDP2 on 2 and 4 ranks
    against one process, DCP resume across world sizes, refusals; ZeRO partitions simulated; the HF Trainer."""
    if not (ROOT / "tests_distributed").exists():
        session.skip("tests_distributed not present")
    install_torch(session)
    install_wheels(session, "swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo", extras="[hf]")
    session.install("-c", CONSTRAINTS, "pytest")
    session.run("python", "-m", "pytest", str(ROOT / "tests_distributed"), "-q", "-p", "no:cacheprovider",
                *session.posargs)


@nox.session
def trl(session: nox.Session) -> None:
    """swift_zoo.integrations.trl on the real TRL 1.16 (own venv, constraints-trl.txt): every zoo trainer against
    TRL's own loss of the same meaning, step by step, on a tiny model built offline; and the TRL examples."""
    session.install("-c", CONSTRAINTS_TRL, "torch==2.13.0")
    wheels = [wheel(d) for d in ("swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo")]
    session.install("-c", CONSTRAINTS_TRL, wheels[0] + "[trl]", *wheels[1:], "pytest", "tokenizers")
    session.install("--no-deps", "--force-reinstall", *wheels)
    session.run("python", "-m", "pytest", str(ROOT / "tests_integrations" / "trl"), "-q", "-p", "no:cacheprovider",
                *session.posargs)


@nox.session
def ms_swift(session: nox.Session) -> None:
    """ms-swift 4.6 with the zoo wheels, in its own venv under constraints-ms-swift.txt.

    swift-zoo-ms-swift's own tests (the start-up hook), then tests_integrations/ms_swift: training runs
    on a tiny Llama through ms-swift (the flag route; the no-flag route in subprocesses), every
    equality the name table claims, argument-time errors; then the docs' generated tables.
    """
    dists = [wheel(d) for d in ("swift-zoo-core", "swift-loss-zoo", "swift-optim-zoo", "my-swift-loss",
                                "swift-zoo-ms-swift")]
    session.install("-c", MS_SWIFT_CONSTRAINTS, "torch==2.13.0")
    session.install("-c", MS_SWIFT_CONSTRAINTS, "ms-swift==4.6.0", "pytest", *dists)
    session.install("--no-deps", "--force-reinstall", *dists)
    session.run("python", "-m", "pytest", str(MS_SWIFT_DIST / "tests"), "-q", "-p", "no:cacheprovider")
    session.run("python", "-m", "pytest", str(ROOT / "tests_integrations" / "ms_swift"), "-q", "-p",
                "no:cacheprovider", *session.posargs, env={"SWIFT_ZOO_MS_SWIFT_DISABLE": "1", "OMP_NUM_THREADS": "1"})
    session.run("python", str(ROOT / "tools" / "gen_ms_swift_docs.py"), "--check")
