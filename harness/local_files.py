"""Bounds on every YAML and JSON file the tools read from the project and its local state (stack files, policy
config, `out/`), so a hostile or corrupted file is refused with one line naming it, never a traceback, a hang or
gigabytes of memory.

The Pulumi CLI reads stack files with gopkg.in/yaml.v3 (`sdk/go/common/encoding/marshal.go`), whose own bounds these
are at least as strict as (go-yaml/yaml v3 branch):
- `decode.go` `unmarshal`/`allowedAliasRatio`: "document contains excessive aliasing" once more than 100 of more
  than 1,000 decoded nodes come from alias expansion and their share passes 99 % (falling to 10 % for 4,000,000
  nodes). The same rule is applied here to the expanded tree, counting the aliased node itself as expanded, with
  an absolute cap of `MAX_NODES` expanded nodes on top.
- `scannerc.go` `max_flow_level`/`max_indents`: "exceeded max depth of 10000"; here `MAX_DEPTH`, since PyYAML's
  composer and Python's json recurse per level and would end in a RecursionError long before 10,000.
yaml.v3 has no file or value size limit; `MAX_FILE_BYTES` and `MAX_VALUE_CHARS` are far above any real stack file
or setting and keep a huge value from being held, expanded or echoed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_VALUE_CHARS = 64 * 1024
MAX_NODES = 100_000
SHOWN_CHARS = 60
# decode.go: alias_ratio_range_low / alias_ratio_range_high.
_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400_000, 4_000_000


class LocalFileError(Exception):
    """A file refused by these bounds or unreadable; the message is one line naming the file."""


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` quoted for a one-line message: cut to `limit` characters with its full length, one line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file as UTF-8 text; refused when larger than `max_bytes` (read no further), not UTF-8, or unreadable."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise LocalFileError(f"{path}: cannot be read: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise LocalFileError(f"{path}: larger than {max_bytes} bytes, more than any such file needs")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LocalFileError(f"{path}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x})") from None


def _allowed_alias_ratio(decodes: int) -> float:
    """decode.go `allowedAliasRatio`."""
    if decodes <= _ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decodes - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def _key_text(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else "<a complex key>"


def _children(node: yaml.Node, key: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.MappingNode):
        pairs = [(k, f"{key}.{_key_text(k)}" if key else _key_text(k)) for k, _ in node.value]
        return [item for (k, v), (_, name) in zip(node.value, pairs, strict=True) for item in ((k, name), (v, name))]
    if isinstance(node, yaml.SequenceNode):
        return [(child, f"{key}[{index}]") for index, child in enumerate(node.value)]
    return []


def _refuse(mark: yaml.Mark, key: str, problem: str) -> yaml.MarkedYAMLError:
    where = f"key {shown(key)}: " if key else ""
    return yaml.composer.ComposerError(None, None, f"{where}{problem}", mark)


def check_expansion(root: yaml.Node) -> None:
    """Walks the composed tree as a decoder expands it (an alias's target again each time), in document order;
    refuses excessive aliasing (yaml.v3's rule), a cycle, more than MAX_NODES nodes or a scalar longer than
    MAX_VALUE_CHARS. Raises a MarkedYAMLError at the node."""
    decodes = expanded = 0
    defined: set[int] = set()
    on_path: set[int] = set()
    pending: list[tuple[yaml.Node, str, bool, bool]] = [(root, "", False, False)]  # node, key, in an alias, leaving
    while pending:
        node, key, in_alias, leaving = pending.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if id(node) in on_path:
            raise _refuse(node.start_mark, key, "an alias refers to a node that contains it")
        in_alias = in_alias or id(node) in defined
        defined.add(id(node))
        decodes += 1
        expanded += in_alias
        if expanded > 100 and decodes > 1000 and expanded / decodes > _allowed_alias_ratio(decodes):
            raise _refuse(node.start_mark, key, "the document contains excessive aliasing (as yaml.v3 refuses it)")
        if decodes > MAX_NODES:
            raise _refuse(node.start_mark, key, f"more than {MAX_NODES} values once aliases are expanded")
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_VALUE_CHARS:
            problem = f"a value of {len(node.value)} characters, more than the {MAX_VALUE_CHARS} allowed"
            raise _refuse(node.start_mark, key, f"{problem}: {shown(node.value)}")
        on_path.add(id(node))
        pending.append((node, key, in_alias, True))
        pending.extend((child, name, in_alias, False) for child, name in reversed(_children(node, key)))


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing nesting deeper than MAX_DEPTH while composing (before its recursion can fail),
    and any document `check_expansion` refuses, before anything is constructed (each document of a stream)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH and not self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            check_expansion(node)
        return node


def where(path: Path, mark: yaml.Mark | None) -> str:
    """`file:line:column` for a message (the file name alone when it is in the current directory)."""
    named = path.name if path.parent == Path.cwd() else str(path)
    return f"{named}:{mark.line + 1}:{mark.column + 1}" if mark else named


def parse_yaml(path: Path, text: str, loader: type[BoundedLoader] = BoundedLoader) -> tuple[Any, yaml.Node | None]:
    """One YAML document of `path` and its node tree, with `loader`'s bounds; errors as one LocalFileError line."""
    parser = loader(text)
    try:
        node = parser.get_single_node()
        return (parser.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as error:
        context = f" ({error.context} at line {error.context_mark.line + 1})" if error.context_mark else ""
        raise LocalFileError(f"{where(path, error.problem_mark)}: {error.problem}{context}") from None
    except yaml.YAMLError as error:  # a reader error (a control character) carries no mark
        raise LocalFileError(f"{where(path, None)}: {str(error).splitlines()[0]}") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise LocalFileError(f"{where(path, None)}: {error}") from None
    finally:
        parser.dispose()


def load_yaml(path: Path) -> Any:
    """A bounded YAML file (one document)."""
    return parse_yaml(path, read_text(path))[0]


def _check_json_tree(path: Path, document: Any) -> None:
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise LocalFileError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise LocalFileError(f"{path}: a value of {len(value)} characters, more than the {MAX_VALUE_CHARS} allowed")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        pending.extend((child, depth + 1) for child in children)


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers the keys it met more than once (Python's json keeps the last silently)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen:
                self.duplicates.append(key)
            seen.add(key)


def _duplicate_key_paths(document: Any) -> list[str]:
    """`a.b` for each key defined twice in one object, anywhere in the document (arrays as `[i]`)."""
    found, pending = [], [(document, "")]
    while pending:
        value, at = pending.pop()
        if isinstance(value, _JsonObject):
            found += [f"{at}.{key}" if at else key for key in value.duplicates]
            pending += [(child, f"{at}.{key}" if at else key) for key, child in value.items()]
        elif isinstance(value, list):
            pending += [(child, f"{at}[{index}]") for index, child in enumerate(value)]
    return sorted(set(found))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    return [_plain(child) for child in value] if isinstance(value, list) else value


def load_json(path: Path) -> Any:
    """A bounded JSON file: size, UTF-8, syntax, depth and value size checked, and no key defined twice in one
    object (a reader that keeps the first and one that keeps the last would disagree; Go's encoding/json, which
    the Pulumi CLI reads `--policy-pack-config` with, keeps the last silently); one LocalFileError line otherwise."""
    text = read_text(path)
    try:
        document = json.loads(text, object_pairs_hook=_JsonObject)
    except json.JSONDecodeError as error:
        raise LocalFileError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise LocalFileError(f"{path}: {error}") from None
    except RecursionError:
        raise LocalFileError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    _check_json_tree(path, document)
    duplicates = _duplicate_key_paths(document)
    if duplicates:
        raise LocalFileError(
            f"{path}: duplicate key {', '.join(duplicates)}: the value written last would win silently; keep one"
        )
    return _plain(document)
