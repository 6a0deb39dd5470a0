"""Runs for test_no_flag.py, in a fresh interpreter: ``python route_runs.py MODEL DATA OUT [--flag]``.

Prints ``{run name: [[loss, grad_norm], ...]}`` as JSON on the last line. With ``--flag`` the zoo comes
in through ``--external_plugins $(swift-zoo ms-swift-plugin)``; without it, only the installed
swift-zoo-ms-swift ``.pth`` can make ``zoo:`` names work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = {
    "sft_cross_entropy_lion": ("sft", "sft", ["--loss_type", "zoo:cross_entropy", "--optimizer", "zoo:lion",
                                              "--learning_rate", "1e-4"]),
    "dpo_simpo": ("rlhf", "dpo", ["--rlhf_type", "dpo", "--loss_type", "zoo:simpo", "--beta", "2"]),
    "kto": ("rlhf", "kto", ["--rlhf_type", "kto", "--loss_type", "zoo:kto"]),
}


def main() -> None:
    model, data, out = (Path(p) for p in sys.argv[1:4])
    flag = "--flag" in sys.argv[4:]
    from swift.pipelines import rlhf_main, sft_main

    from swift_zoo.integrations.ms_swift import external_plugin_path

    results = {}
    for name, (command, data_name, flags) in RUNS.items():
        argv = ["--model", str(model), "--model_type", "llama", "--template", "chatml", "--check_model", "false",
                "--dataset", str(data / f"{data_name}.jsonl"), "--tuner_type", "full", "--torch_dtype", "float32",
                "--max_steps", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
                "--logging_steps", "1", "--learning_rate", "1e-3", "--report_to", "none", "--save_strategy", "no",
                "--split_dataset_ratio", "0", "--dataloader_num_workers", "0", "--dataset_num_proc", "1",
                "--seed", "42", "--output_dir", str(out / name), *flags]
        if flag:
            argv += ["--external_plugins", str(external_plugin_path())]
        logs = (sft_main if command == "sft" else rlhf_main)(argv)["log_history"]
        results[name] = [[log["loss"], log["grad_norm"]] for log in logs if "loss" in log]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
