"""Advantage estimators (``swift_zoo_register_advantages``): torch-free specs, ``ADVANTAGE_SPECS``."""

from swift_zoo import AdvantageSpec

_MODULE = "swift_loss_zoo.advantages"

ADVANTAGE_SPECS = [
    AdvantageSpec("grpo", f"{_MODULE}.grpo:GRPOAdvantage",
                  summary="Reward minus its group's mean, over the group std (or the batch std, or none)",
                  reference="arXiv:2402.03300"),
    AdvantageSpec("dr_grpo", f"{_MODULE}.grpo:DrGRPOAdvantage",
                  summary="Reward minus its group's mean, no std division (Dr. GRPO)",
                  reference="arXiv:2503.20783"),
    AdvantageSpec("rloo", f"{_MODULE}.rloo:RLOOAdvantage",
                  summary="Reward minus the mean of the other rewards of its group (leave-one-out)",
                  reference="arXiv:2402.14740"),
    AdvantageSpec("reinforce_plus_plus", f"{_MODULE}.reinforce_plus_plus:ReinforcePlusPlusAdvantage",
                  summary="Discounted per-token returns whitened over the batch, no critic and no group",
                  reference="arXiv:2501.03262"),
    AdvantageSpec("reinforce_plus_plus_baseline",
                  f"{_MODULE}.reinforce_plus_plus_baseline:ReinforcePlusPlusBaselineAdvantage",
                  summary="Group-centred rewards whitened over the batch's tokens (REINFORCE++-baseline)",
                  reference="arXiv:2501.03262"),
    AdvantageSpec("remax", f"{_MODULE}.remax:ReMaxAdvantage",
                  summary="Per-token return minus the reward of the greedy baseline response",
                  reference="arXiv:2310.10505"),
    AdvantageSpec("opo", f"{_MODULE}.opo:OPOAdvantage",
                  summary="Reward minus its group's length-weighted mean reward (optimal baseline)",
                  reference="arXiv:2505.23585"),
    AdvantageSpec("gdpo", f"{_MODULE}.gdpo:GDPOAdvantage",
                  summary="K rewards each normalised in its group, weighted sum, whitened over the batch",
                  reference="arXiv:2601.05242"),
    AdvantageSpec("grpo_passk", f"{_MODULE}.grpo_passk:GRPOPassKAdvantage",
                  summary="Only each group's best response is reinforced, by its lead over the runner-up",
                  reference="arXiv:2503.19595"),
    AdvantageSpec("gae", f"{_MODULE}.gae:GAEAdvantage",
                  summary="Generalized advantage estimation from critic values; returns for the value loss",
                  reference="arXiv:1506.02438"),
]
