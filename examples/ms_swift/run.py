"""swift zoo inside ms-swift on the tiny model: SFT, DPO, SimPO, KTO and a zoo optimizer, in one process.

``python examples/ms_swift/run.py [--folder DIR]`` builds the tiny Llama and its data (``tiny.py``),
then runs ms-swift's own entry points (``sft_main`` / ``rlhf_main``, what ``swift sft`` / ``swift
rlhf`` call) with ``--external_plugins $(swift-zoo ms-swift-plugin)``, 8 steps each, and prints the
first and last logged loss of each run. Each run is also shown as the ``swift`` command it equals.
Needs ms-swift 4.6 (``pip install -c constraints-ms-swift.txt "./core[ms-swift]" ./swift-loss-zoo
./swift-optim-zoo``).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ("sft", "sft", ["--loss_type", "zoo:cross_entropy"]),
    ("sft", "sft", ["--loss_type", "zoo:dft"]),
    ("sft", "sft", ["--loss_type", "zoo:cross_entropy", "--optimizer", "zoo:galore_adamw",
                    "--optim_args", "rank=16,update_proj_gap=2"]),
    ("rlhf", "dpo", ["--rlhf_type", "dpo", "--loss_type", "zoo:dpo"]),
    ("rlhf", "dpo", ["--rlhf_type", "simpo", "--loss_type", "zoo:simpo", "--cpo_alpha", "0"]),
    ("rlhf", "kto", ["--rlhf_type", "kto", "--loss_type", "zoo:kto"]),
]


def _tiny():
    spec = importlib.util.spec_from_file_location("ms_swift_tiny", HERE / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="where the model, data and runs go (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    from swift.pipelines import rlhf_main, sft_main

    from swift_zoo.integrations.ms_swift import external_plugin_path

    tiny = _tiny()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="ms_swift_zoo_"))
    model_dir, data = tiny.build(folder)
    results = []
    for index, (command, data_name, flags) in enumerate(RUNS):
        argv = ["--model", str(model_dir), *tiny.MODEL_ARGS, "--dataset", str(data[data_name]),
                "--tuner_type", "full", "--max_steps", str(args.steps), "--per_device_train_batch_size", "2",
                "--gradient_accumulation_steps", "2", "--learning_rate", "1e-3", "--logging_steps", "1",
                "--report_to", "none", "--save_strategy", "no", "--split_dataset_ratio", "0",
                "--output_dir", str(folder / "runs" / str(index)), *flags,
                "--external_plugins", str(external_plugin_path())]
        logs = (sft_main if command == "sft" else rlhf_main)(argv)["log_history"]
        losses = [log["loss"] for log in logs if "loss" in log]
        results.append((f"swift {command} " + shlex.join(flags), losses[0], losses[-1]))
    print(f"\ntiny model and data in {folder}; every run also has --model {model_dir} "
          f"{shlex.join(tiny.MODEL_ARGS)} --dataset <sft|dpo|kto.jsonl> --max_steps {args.steps} ... "
          "--external_plugins $(swift-zoo ms-swift-plugin)")
    width = max(len(name) for name, _, _ in results)
    print(f"{'run':<{width}}  {'first loss':>10}  {'last loss':>10}")
    for name, first, last in results:
        print(f"{name:<{width}}  {first:>10.4f}  {last:>10.4f}")


if __name__ == "__main__":
    main()
