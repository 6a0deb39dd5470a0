"""MARS: variance-reduced (corrected-gradient) AdamW."""

from swift_optim_zoo.mars.mars import MARS

__all__ = ["MARS"]
