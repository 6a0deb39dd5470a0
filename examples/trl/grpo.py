"""GRPO of the tiny chat model inside TRL's GRPOTrainer, rewarded for answering with the prompt's word:
``python examples/trl/grpo.py``."""

from __future__ import annotations

import tiny
from trl import GRPOConfig

from swift_zoo.integrations.trl import ZooGRPOTrainer


def main() -> dict:
    model_dir, steps, out = tiny.parse_args(__doc__)
    trainer = ZooGRPOTrainer(
        model=str(model_dir),  # TRL loads the policy, and the reference model for the KL term, from the folder
        reward_funcs=tiny.word_reward,
        args=GRPOConfig(beta=0.04, num_generations=4, max_completion_length=8, **tiny.config_kwargs(out, steps)),
        train_dataset=tiny.prompt_dataset(),
        zoo_config={"loss_type": "dr_grpo"},  # max_completion_length comes from GRPOConfig
    )
    trainer.train()
    result = tiny.report("grpo", trainer)
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    print(f"[grpo] mean reward {rewards[0]:.3f} -> {rewards[-1]:.3f}")
    return result


if __name__ == "__main__":
    main()
