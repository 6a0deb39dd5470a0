"""Every advantage estimator that declares itself equal to verl 0.9.1 against its ``core_algos`` function.

verl takes ``token_level_rewards [B, T]`` (the score on each response's last valid token, per-token terms
elsewhere), ``response_mask`` and ``index`` (the prompt uid of each response); the zoo takes ``rewards [B]``,
``token_rewards``, ``completion_mask`` and ``group_ids``. Groups hold 2 to 4 responses (a lone response is the
declared difference). Sequence-level zoo advantages are compared with verl's on every counted token.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _policy_references import F64, SEEDS, advantage_records, assert_close, record_id

import swift_zoo
from swift_loss_zoo.advantages._token_rewards import last_counted

pytest.importorskip("verl", reason="verl is not installed (the references nox session installs verl==0.9.1 --no-deps)")
core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl's core_algos needs ray, tensordict, "
                                 "omegaconf and codetiming (tests_references/requirements.txt)")
from verl.trainer.config import AlgoConfig  # noqa: E402

RECORDS = advantage_records("verl")
KWARGS = {  # estimator kwargs beyond the record's, each a verl setting the record names
    "grpo": [{}, {"eps": 1e-4}, {"scale_rewards": "group", "unbiased_std": True}],
    "grpo_passk": [{"scale_rewards": True}, {"scale_rewards": False}],
    "gdpo": [{}, {"reward_weights": (1.0, 0.5, -2.0)}, {"scale_rewards": False}],
    "reinforce_plus_plus": [{"gamma": 1.0}, {"gamma": 0.9}],
    "gae": [{"gamma": 1.0, "lam": 1.0}, {"gamma": 0.95, "lam": 0.9}],
}
CASES = [(item, kwargs) for item in RECORDS for kwargs in KWARGS.get(item[0], [{}])]


def batch(seed: int, *, functions: int | None = None, holes: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size, seq = 9, 6
    ids = torch.tensor([4, 4, 4, 4, 8, 8, 8, 1, 1])[torch.randperm(size, generator=g)]
    lengths = torch.randint(2, seq + 1, (size,), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    if holes:
        mask[0, 0] = 0  # a masked tool span before the response's last token
    shape = (size,) if functions is None else (size, functions)
    return {
        "rewards": torch.randint(0, 3, shape, generator=g).to(F64) + torch.rand(shape, generator=g, dtype=F64).round(),
        "group_ids": ids,
        "completion_mask": mask,
        "token_rewards": torch.where(mask.bool(), 0.1 * torch.randn(size, seq, generator=g, dtype=F64), 0.0),
        "values": torch.randn(size, seq, generator=g, dtype=F64),
        "baseline_rewards": torch.rand(size, generator=g, dtype=F64),
    }


def token_level_rewards(x: dict[str, torch.Tensor], estimator) -> torch.Tensor:
    """verl's layout: the score on each response's last valid token, plus the per-token terms where the
    estimator reads them (an outcome estimator's ``rewards`` already are verl's per-response sum)."""
    mask = x["completion_mask"].bool()
    score = torch.where(last_counted(mask), x["rewards"][:, None], 0.0)
    reads_tokens = any(spec.key == "token_rewards" for spec in estimator.inputs)
    return score + x["token_rewards"] if reads_tokens else score


def verl_advantages(name: str, estimator, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    mask = x["completion_mask"].double()
    index = np.array([str(int(i)) for i in x["group_ids"]], dtype=object)
    rewards = token_level_rewards(x, estimator) if name != "gdpo" else None
    if name in ("grpo", "dr_grpo"):
        norm = estimator.scale_rewards == "group"
        out, _ = core_algos.compute_grpo_outcome_advantage(rewards, mask, index, epsilon=estimator.eps,
                                                           norm_adv_by_std_in_grpo=norm)
        return out, None
    if name == "rloo":
        return core_algos.compute_rloo_outcome_advantage(rewards, mask, index)[0], None
    if name == "opo":
        return core_algos.compute_opo_outcome_advantage(rewards, mask, index)[0], None
    if name == "grpo_passk":
        config = AlgoConfig(norm_adv_by_std_in_grpo=estimator.scale_rewards)
        return core_algos.compute_grpo_passk_outcome_advantage(rewards, mask, index, epsilon=estimator.eps,
                                                               config=config)[0], None
    if name == "reinforce_plus_plus":
        return core_algos.compute_reinforce_plus_plus_outcome_advantage(
            rewards, mask, config=AlgoConfig(gamma=estimator.gamma))[0], None
    if name == "reinforce_plus_plus_baseline":
        return core_algos.compute_reinforce_plus_plus_baseline_outcome_advantage(rewards, mask, index)[0], None
    if name == "remax":
        return core_algos.compute_remax_outcome_advantage(rewards, x["baseline_rewards"], mask)[0], None
    if name == "gae":
        return core_algos.compute_gae_advantage_return(rewards, x["values"], mask, gamma=estimator.gamma,
                                                       lam=estimator.lam)
    if name == "gdpo":
        keys = [f"reward_{k}" for k in range(x["rewards"].shape[1])]
        weights = None if estimator.reward_weights is None else list(estimator.reward_weights)
        from omegaconf import OmegaConf

        config = OmegaConf.create({"gdpo_reward_keys": keys, "gdpo_reward_weights": weights})
        prompts = torch.zeros(mask.shape[0], 2, dtype=torch.long)
        out, _ = core_algos.compute_gdpo_outcome_advantage(
            torch.zeros_like(mask), mask, index, epsilon=estimator.eps,
            norm_adv_by_std_in_grpo=estimator.scale_rewards, config=config,
            non_tensor_batch={key: x["rewards"][:, k].numpy() for k, key in enumerate(keys)},
            batch={"prompts": prompts, "attention_mask": torch.cat([torch.ones_like(prompts), x["completion_mask"]], 1)})
        return out, None
    raise AssertionError(f"no verl driver for {name}")


@pytest.mark.parametrize(("item", "kwargs"), CASES, ids=[f"{record_id(i)}-{k}" for i, k in CASES])
@pytest.mark.parametrize("seed", SEEDS)
def test_verl_advantage(item, kwargs, seed):
    name, record = item
    estimator = swift_zoo.build_advantage(name, **{**record.zoo_kwargs, **kwargs})
    # verl's GDPO finds each response's last token as (valid length - 1): right padding without holes
    x = batch(seed, functions=3 if name == "gdpo" else None, holes=name != "gdpo")
    found = estimator({spec.key: x[spec.key] for spec in estimator.inputs if spec.key in x})
    expected, returns = verl_advantages(name, estimator, x)
    mask = x["completion_mask"].bool()
    if found.dim() == 1:
        found = found[:, None].expand(mask.shape)
    what = f"{name} vs verl {record.name.split(' (')[0]} {kwargs}"
    assert_close(torch.where(mask, found, 0.0), torch.where(mask, expected, 0.0), what, rtol=1e-6, atol=1e-7)
    if returns is not None:
        assert_close(torch.where(mask, estimator.outputs["returns"], 0.0), torch.where(mask, returns, 0.0),
                     f"{what}: returns")
