"""The file to pass to ms-swift: ``--external_plugins $(swift-zoo ms-swift-plugin)``.

ms-swift executes ``--external_plugins`` files (paths only) while it parses arguments
(``BaseArguments._import_external_plugins``, ``swift/arguments/base_args/base_args.py:170``), before
it loads the model. Executing this one makes every zoo loss and optimizer selectable as
``--loss_type zoo:<name>`` and ``--optimizer zoo:<name>``.
"""

from __future__ import annotations

from swift_zoo.integrations.ms_swift import install

install(source="--external_plugins")
