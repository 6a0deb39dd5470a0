"""ZooGRPOTrainer specifics: the cause of the grad-norm drift seen against TRL's grpo, and the exact unit
count of an accumulation window when a generation batch spans several windows."""

from __future__ import annotations

import pytest
from conftest import STEPS, assert_same_steps, make_trainer, train_steps

import swift_zoo
from swift_zoo.integrations.trl import ZooGRPOTrainer


def test_drift_came_from_trl_bias_corrected_kl(model_dir, tmp_path):
    # TRL's use_bias_correction_kl (default True) multiplies the KL term by the differentiable importance ratio.
    # On-policy the ratio is 1 and the policy equals the reference at step 1, so step 1 agrees; from step 2 the
    # KL is non-zero (and grows) and the gradient gains beta * k3 * grad log pi. A zoo grpo without it drifts exactly there,
    # and equals TRL once TRL's correction is off too.
    plain = {"loss_type": "grpo", "loss_kwargs": {"use_bias_correction_kl": False}}
    trl_default = train_steps(make_trainer("GRPOTrainer", model_dir, tmp_path / "t", loss_type="grpo", beta=0.04))
    zoo_plain = train_steps(make_trainer("GRPOTrainer", model_dir, tmp_path / "z", zoo=plain, beta=0.04))
    assert zoo_plain[0]["grad_norm"] == pytest.approx(trl_default[0]["grad_norm"], rel=1e-6)
    gaps = [abs(z["grad_norm"] - t["grad_norm"]) / t["grad_norm"] for z, t in zip(zoo_plain, trl_default)]
    assert gaps[0] < 1e-7 < gaps[1] < gaps[2] < gaps[3] and gaps[3] > 1e-4, gaps  # grows with the KL
    trl_plain = train_steps(make_trainer("GRPOTrainer", model_dir, tmp_path / "t2", loss_type="grpo", beta=0.04,
                                         use_bias_correction_kl=False))
    assert_same_steps(zoo_plain, trl_plain)


class RecordingTrainer(ZooGRPOTrainer):
    """Records, per micro-step, the optimizer step, the window's unit count and this micro-batch's tokens."""

    def _compute_loss(self, model, inputs):
        self.records.append((self.state.global_step, int(self._window_units()),
                             int((self._trained_mask(inputs) != 0).sum())))
        return super()._compute_loss(model, inputs)


def test_window_count_is_exact_when_a_generation_spans_two_windows(model_dir, tmp_path):
    # steps_per_generation 4 = 2 windows of 2 micro-steps per generation batch: TRL's dapo rescales the generation
    # batch's token count by 2 / 4; the zoo counts each window's own tokens.
    trainer = make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dapo"}, trainer_class=RecordingTrainer,
                           per_device_train_batch_size=2, num_generations=2, steps_per_generation=4,
                           max_completion_length=12)
    trainer.records = []
    train_steps(trainer)
    windows = {}
    for step, units, tokens in trainer.records:
        windows.setdefault(step, []).append((units, tokens))
    assert len(windows) == STEPS
    for micro in windows.values():
        assert len(micro) == 2 and micro[0][0] == micro[1][0] == sum(tokens for _, tokens in micro)


def test_misaligned_windows_are_refused(model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=r"steps_per_generation \* num_iterations = 3 is not a multiple"):
        make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dapo"}, per_device_train_batch_size=2,
                     num_generations=2, steps_per_generation=3)
