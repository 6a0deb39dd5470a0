"""Adapters for the trainers people already use: ``swift_zoo.integrations.hf`` (the ``[hf]`` extra) and
``swift_zoo.integrations.ms_swift`` (the ``[ms-swift]`` extra; ``swift-zoo ms-swift-plugin``)."""
