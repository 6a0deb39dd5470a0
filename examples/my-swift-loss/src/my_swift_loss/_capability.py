"""Signum's distributed capability: one record, shared by the spec (``_plugin.py``) and the class. Torch-free.

"supported" is a promise the conformance suite holds the optimizer to: ``check_fsdp2_equivalence`` trains it on
two FSDP2 ranks and wants one process's parameters, bitwise for an element-wise rule. The rest stays
"untested" (a warning at the first step under such a wrapper) until a test shows it.
"""

from __future__ import annotations

from swift_zoo import DistributedCapability, Support

SIGNUM = DistributedCapability(
    ddp=Support("untested", "element-wise"),
    fsdp2=Support("supported", "element-wise on each rank's rows (check_fsdp2_equivalence: bitwise one process)"),
)
