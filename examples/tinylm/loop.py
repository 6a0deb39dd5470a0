"""The training loop: YAML in; a progress bar, a metrics log, a loss-curve PNG and a JSON summary out.

Gradient accumulation keeps the zoo's normalisation contract: every micro-batch's outputs are
computed first, their units are counted with ``loss.count_units`` and summed into
``num_items_in_batch``, and each micro-batch loss is then divided by that global count, so the
accumulated gradient equals the full batch's.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

import swift_zoo
from tinylm import evaluate
from tinylm.families import Models, family_of, model_outputs, sample_batch
from tinylm.model import TinyCausalLM, TinyConfig
from tinylm.tasks import CopyTask

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: The ``training_args`` keys this loop reads besides swift zoo's own (a near-miss of any of them is an error).
TRAINER_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "group_size", "advantage_scale")


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def load(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The YAML config with ``a.b.c=value`` overrides applied (values parsed as YAML).

    Overriding ``training_args.optimizer_type`` swaps in that optimizer's kwargs from the config's
    ``optimizer_presets`` (tuned for this model and task; the optimizer's own defaults when the config
    has none) before the other overrides apply, so ``training_args.optimizer_kwargs.lr=...`` edits the
    preset; the run is renamed ``<name>-<optimizer>`` unless ``name`` is overridden too, so it never
    replaces the default run's checkpoint (which other configs start from).
    """
    config = swift_zoo.load_config(path)  # a ConfigError for a directory, a binary file, bad YAML, an alias bomb
    parsed = []
    for item in overrides:
        dotted, equals, raw = item.partition("=")
        if not equals or not dotted.strip():
            message = f"--set expects KEY=VALUE (e.g. training_args.max_steps=10), got {item!r}"
            raise swift_zoo.ConfigError(message, key="--set", expected="KEY=VALUE", found=item)
        try:
            parsed.append((dotted.strip(), yaml.safe_load(raw)))
        except yaml.YAMLError as exc:
            message = f"--set {dotted}: the value {raw!r} is not YAML ({' '.join(str(exc).split())})"
            raise swift_zoo.ConfigError(message, key=dotted, expected="a YAML value", found=raw) from None
    keys = {dotted for dotted, _ in parsed}
    chosen = [value for dotted, value in parsed if dotted == "training_args.optimizer_type"]
    if chosen and chosen[-1] != config["training_args"].get("optimizer_type"):
        optimizer = chosen[-1]
        presets = config.get("optimizer_presets") or {}
        if optimizer not in presets:
            print(f"[{config['name']}] no optimizer_presets.{optimizer} in {path}: using the optimizer's defaults")
        config["training_args"]["optimizer_kwargs"] = dict(presets.get(optimizer) or {})
        if "name" not in keys:
            config["name"] = f"{config['name']}-{optimizer}"
    for dotted, value in parsed:
        _set(config, dotted, value)
    return config


def check_config(args: dict[str, Any]) -> None:
    """Refuse what this loop would silently ignore, before anything trains (a prerequisite run takes minutes):
    typos of any key (``max_step``), keys nothing reads (this loop is the whole trainer), unknown names."""
    passthrough = swift_zoo.check_training_args(args, TRAINER_KEYS)
    unused = sorted(set(passthrough) - set(TRAINER_KEYS))
    if unused:
        message = (f"training_args.{unused[0]} is not read by this example (it reads swift zoo's keys and "
                   f"{', '.join(TRAINER_KEYS)})")
        raise swift_zoo.ConfigError(message, key=unused[0], expected=" or ".join(TRAINER_KEYS), found=unused[0])
    for key, kind in (("loss_type", "loss"), ("optimizer_type", "optimizer"), ("lr_scheduler_type", "scheduler")):
        if isinstance(args.get(key), str):
            swift_zoo.REGISTRY.resolve(kind, args[key])


def _checkpoint(runs: Path, name: str, quiet: bool) -> Path:
    """Path of run ``name``'s model; runs ``configs/<name>.yaml`` first if it has not run yet."""
    path = runs / name / "model.pt"
    if not path.exists():
        print(f"[{name}] no checkpoint at {path}: training it first")
        train(load(CONFIG_DIR / f"{name}.yaml"), runs=runs, quiet=quiet)
    return path


def _model(config: dict[str, Any], task: CopyTask, runs: Path, key: str, quiet: bool) -> TinyCausalLM:
    cfg = TinyConfig(vocab_size=task.vocab_size, **config.get("model", {}))
    model = TinyCausalLM(cfg)
    source = config.get(key)
    if source:
        state = torch.load(_checkpoint(runs, source, quiet), weights_only=True)
        model = TinyCausalLM(TinyConfig(**state["config"]))
        model.load_state_dict(state["model"])
    return model


def _proof(spec: dict[str, Any], before: float, after: float) -> dict[str, Any]:
    result = {"metric": spec["metric"], "before": round(before, 4), "after": round(after, 4)}
    checks = []
    if "min" in spec:
        checks.append((after >= spec["min"], f"after >= {spec['min']}"))
    if "min_gain" in spec:
        checks.append((after - before >= spec["min_gain"], f"after - before >= {spec['min_gain']}"))
    if "max_ratio" in spec:
        checks.append((after <= spec["max_ratio"] * before, f"after <= {spec['max_ratio']} x before"))
    result["criterion"] = " and ".join(text for _, text in checks)
    result["passed"] = all(ok for ok, _ in checks)
    return result


def _plot(history: list[dict[str, Any]], evals: list[tuple[int, float]], metric: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    # on-policy GRPO-style losses are 0 in value (group-centred advantages, ratio 1): show the batch reward
    key = "batch_reward" if "batch_reward" in history[0] else "loss"
    ax1.plot([h["step"] for h in history], [h[key] for h in history], lw=1)
    ax1.set(xlabel="step", ylabel=key.replace("_", " "), title=f"{title}: training {key.replace('_', ' ')}")
    ax2.plot([s for s, _ in evals], [v for _, v in evals], marker="o")
    ax2.set(xlabel="step", ylabel=metric, title=f"held-out {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(config: dict[str, Any], *, runs: Path, quiet: bool = False) -> dict[str, Any]:
    """Run one config; return (and write) its summary."""
    from tqdm import tqdm

    started = time.perf_counter()
    name = config["name"]
    out = runs / name
    out.mkdir(parents=True, exist_ok=True)
    # a tiny model gains nothing from intra-op threads, and loses a lot when other processes share the cores
    torch.set_num_threads(int(config.get("threads", 1)))
    torch.manual_seed(config.get("seed", 0))
    generator = torch.Generator().manual_seed(config.get("seed", 0))
    task = CopyTask(**config.get("task", {}))
    args = config["training_args"]
    check_config(args)

    policy = _model(config, task, runs, "init_from", quiet)
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if config.get("init_from") else None
    teacher = _model(config, task, runs, "teacher_from", quiet).eval().requires_grad_(False) \
        if config.get("teacher_from") else None
    models = Models(policy, reference, teacher)
    built = swift_zoo.build_from_config(config, policy, trainer_keys=TRAINER_KEYS)
    loss_fn, optimizer = built.loss, built.optimizer
    family = family_of(loss_fn)
    metric_name = config["proof"]["metric"]
    measure = evaluate.METRICS[metric_name]

    def run_eval() -> float:
        policy.eval()
        if hasattr(optimizer, "eval"):
            optimizer.eval()  # schedule-free: evaluate at the averaged point
        value = measure(models, task)
        if hasattr(optimizer, "train"):
            optimizer.train()
        policy.train()
        return value

    steps = int(args["max_steps"])
    batch_size = int(args.get("per_device_train_batch_size", 32))
    accumulation = int(args.get("gradient_accumulation_steps", 1))
    eval_every = int(config.get("eval_every", max(steps // 8, 1)))
    before = run_eval()
    evals = [(0, before)]
    history: list[dict[str, Any]] = []
    log = (out / "metrics.jsonl").open("w")
    bar = tqdm(range(1, steps + 1), desc=name, disable=quiet, mininterval=1.0)
    for step in bar:
        with torch.no_grad():
            policy.eval()
            data = sample_batch(family, task, batch_size, generator, models, group_size=int(args.get("group_size", 8)),
                                advantage_scale=args.get("advantage_scale", "group"))
            policy.train()
        rows = next(iter(data.values())).shape[0]
        micro = [{k: v[i::accumulation] for k, v in data.items()} for i in range(accumulation) if i < rows]
        outputs = [model_outputs(loss_fn, family, models, mb) for mb in micro]
        total_units = sum(loss_fn.count_units(o, lab) for o, lab in outputs)
        loss_value = 0.0
        for o, lab in outputs:
            part = loss_fn(o, lab, num_items_in_batch=total_units)
            part.backward()
            loss_value += part.item()
        grad_norm = built.clip_and_step(policy.parameters())
        optimizer.zero_grad(set_to_none=True)
        record = {"step": step, "loss": loss_value, "lr": optimizer.param_groups[0]["lr"],
                  **{k: round(v.item(), 5) for k, v in loss_fn.metrics.items()}}
        if grad_norm is not None:
            record["grad_norm"] = round(float(grad_norm), 5)
        if "rewards" in data:
            record["batch_reward"] = round(data["rewards"].mean().item(), 4)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"[{name}] loss became {loss_value} at step {step}")
        if step % eval_every == 0 or step == steps:
            record[metric_name] = run_eval()
            evals.append((step, record[metric_name]))
        history.append(record)
        log.write(json.dumps(record) + "\n")
        bar.set_postfix(loss=f"{loss_value:.4f}", **{metric_name: f"{evals[-1][1]:.3f}"}, refresh=False)
    log.close()
    after = evals[-1][1]
    torch.save({"config": vars(policy.config), "model": policy.state_dict()}, out / "model.pt")
    _plot(history, evals, metric_name, out / "loss_curve.png", name)
    summary = {
        "name": name,
        "loss_type": args["loss_type"],
        "optimizer_type": args.get("optimizer_type"),
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(history[-1]["loss"], 5),
        "proof": _proof(config["proof"], before, after),
        "files": {"metrics": "metrics.jsonl", "curve": "loss_curve.png", "model": "model.pt"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    proof = summary["proof"]
    verdict = "PASSED" if proof["passed"] else "FAILED"
    print(f"[{name}] held-out {metric_name.replace('_', ' ')}: {proof['before']:.3f} -> {proof['after']:.3f} "
          f"({proof['criterion']}: {verdict}) in {summary['seconds']} s; summary: {out / 'summary.json'}")
    return summary
