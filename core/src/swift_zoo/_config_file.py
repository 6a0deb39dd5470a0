"""Reading a YAML config file: ``yaml.safe_load`` only, within limits, every failure a :class:`ConfigError`.

A config file is small: a few hundred values. What is not a config fails here with the path and the
reason, before a trainer starts, instead of a raw ``IsADirectoryError``, ``UnicodeDecodeError`` or YAML
traceback:

* not a regular file (a directory, a device), or larger than :data:`MAX_CONFIG_BYTES` -- checked before
  reading (a 50 MB YAML took 6 minutes and 3.5 GB to parse);
* not UTF-8 text (a binary file);
* a YAML syntax error (with the line and column);
* a document that expands to more than :data:`MAX_CONFIG_VALUES` values once aliases are followed, or
  that refers to itself. An alias is a reference, so a 1 KB "billion laughs" document loads fast and
  small, but anything that walks the result -- ``repr()``, a deep copy, a JSON dump, a trainer logging
  its config -- walks 10^9 values. The expanded size is counted on the composed node graph (shared nodes
  counted once per reference, memoised), before any Python object is built.

Imports no torch.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from swift_zoo._errors import ConfigError

#: The largest config file read (bytes).
MAX_CONFIG_BYTES = 1 * 2**20
#: The most values (scalars, lists, mappings) a config may expand to once its aliases are followed.
MAX_CONFIG_VALUES = 100_000


def _refuse(path: str, problem: str, expected: str) -> ConfigError:
    return ConfigError(f"config file {path!r} {problem}", key=None, expected=expected, found=path)


def read_text(path: str) -> str:
    """The text of ``path`` if it is a regular UTF-8 file of at most :data:`MAX_CONFIG_BYTES`."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _refuse(path, "does not exist", "a YAML file") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror or exc}", "a readable YAML file") from None
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "is a directory, not a YAML file", "a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, "is not a regular file", "a YAML file")
    if info.st_size > MAX_CONFIG_BYTES:
        problem = f"is {info.st_size} bytes; a config may hold at most {MAX_CONFIG_BYTES}"
        raise _refuse(path, problem, f"a YAML file of at most {MAX_CONFIG_BYTES} bytes")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror or exc}", "a readable YAML file") from None
    if len(data) > MAX_CONFIG_BYTES:  # grew since stat, or a file whose size stat does not know
        expected = f"a YAML file of at most {MAX_CONFIG_BYTES} bytes"
        raise _refuse(path, f"holds more than {MAX_CONFIG_BYTES} bytes", expected)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (byte {exc.start} is {data[exc.start:exc.start + 1]!r}): is it a binary file?"
        raise _refuse(path, problem, "a UTF-8 YAML file") from None


def expanded_size(node: Any, limit: int) -> int:
    """How many values the node graph stands for once aliases are followed (stops counting past ``limit``).

    Raises :class:`ValueError` for a graph that contains itself (a recursive alias).
    """
    import yaml

    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(current: Any) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            message = f"refers to itself through an alias (line {current.start_mark.line + 1})"
            raise ValueError(message)
        visiting.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            for child in current.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                total += size(key_node) + size(value_node)
                if total > limit:
                    break
        visiting.discard(key)
        sizes[key] = total
        return total

    return size(node)


def parse_yaml(text: str, path: str) -> Any:
    """``yaml.safe_load(text)`` with the expansion limit; errors name ``path``."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise _refuse(path, f"is not valid YAML: {detail}", "a YAML mapping") from None
        except RecursionError:
            raise _refuse(path, "nests too deeply", "a YAML mapping") from None
        if node is None:
            return None
        try:
            values = expanded_size(node, MAX_CONFIG_VALUES)
        except (ValueError, RecursionError) as exc:
            problem = str(exc) if isinstance(exc, ValueError) else "nests too deeply"
            raise _refuse(path, problem, "a YAML mapping") from None
        if values > MAX_CONFIG_VALUES:
            problem = (
                f"expands to more than {MAX_CONFIG_VALUES} values once its aliases (*name) are followed: "
                "a config is a few hundred; is it an alias bomb ('billion laughs')?"
            )
            raise _refuse(path, problem, f"at most {MAX_CONFIG_VALUES} values")
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise _refuse(path, f"is not valid YAML: {detail}", "a YAML mapping") from None
    finally:
        loader.dispose()


def read_config_file(path: str) -> Any:
    """The YAML document in ``path``, read within the limits above."""
    return parse_yaml(read_text(path), path)
