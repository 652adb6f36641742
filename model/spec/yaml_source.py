"""Safe YAML reading that remembers where every key and value came from.

PyYAML's ``safe_load`` loses positions, silently keeps the last of duplicate keys and expands
aliases without bound. We compose the node graph (which shares aliased nodes instead of copying
them), then walk it ourselves: plain Python data comes out, with a table from key path to
(line, column), duplicate keys reported, only standard tags accepted, and the expansion budget
enforced so a "billion laughs" file is refused after a bounded amount of work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from faultmesh.model.spec.errors import SpecError, SpecErrors, format_path

Path = tuple[Any, ...]

# Largest number of nodes one document may expand to (aliases counted at every use).
MAX_EXPANDED_NODES = 200_000
# Deepest nesting of mappings and sequences accepted (real specs stay under 15).
MAX_DEPTH = 200

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


@dataclass
class Source:
    """A parsed YAML document: its data and where each path sits in the file."""

    file: str
    data: Any
    value_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Problems that did not stop the reading (duplicate keys, disallowed tags): reported
    # together with whatever validation finds next, so a user sees every error at once.
    errors: list[SpecError] = field(default_factory=list)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """(line, column) of the path's key or value, else of its nearest located ancestor."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            probe = probe[:-1]
        # No marks at all (data from from_document, not a file): no position, rather than a
        # made-up 1:1.
        return self.value_marks.get((), (1, 1) if self.value_marks else (0, 0))

    def error(self, path: Path, message: str, *, key: bool = False) -> SpecError:
        line, column = self.locate(path, key=key)
        return SpecError(self.file, line, column, format_path(path), message)


class _Budget:
    def __init__(self, limit: int):
        self.left = limit


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    def __init__(self, source: Source):
        self.source = source
        self.errors: list[SpecError] = []
        self.budget = _Budget(MAX_EXPANDED_NODES)
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, path: Path, message: str) -> None:
        line, column = _mark(node)
        self.errors.append(SpecError(self.source.file, line, column, format_path(path), message))

    def walk(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.budget.left -= 1
        if self.budget.left < 0:
            raise _TooLarge(node)
        if depth > MAX_DEPTH:
            # Was reported as "expands to more than N nodes", which is not what is wrong.
            raise _TooDeep(node)
        self.source.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                self.fail(node, path, f"tag {node.tag!r} is not allowed (safe YAML only)")
                return None
            return self.constructor.construct_object(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.fail(node, path, f"tag {node.tag!r} is not allowed (safe YAML only)")
                return None
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                self.fail(node, path, f"tag {node.tag!r} is not allowed (safe YAML only)")
                return None
            return self.walk_mapping(node, path, depth)
        raise AssertionError(f"unknown YAML node {node!r}")

    def walk_mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in self._merged_pairs(node, path):
            key = self.walk(key_node, (*path, "<key>"), depth + 1)
            if isinstance(key, list | dict) or (key is None and key_node.tag != _NULL):
                self.fail(key_node, path, "a mapping key must be a plain value")
                continue
            if key in result:
                # Keep the first value and report the second: YAML would keep the last.
                first = self.source.key_marks.get((*path, key), (0, 0))
                self.fail(key_node, (*path, key),
                          f"duplicate key {key!r} (first defined at line {first[0]}); "
                          "YAML would silently keep only the last")
                continue
            self.source.key_marks[(*path, key)] = _mark(key_node)
            result[key] = self.walk(value_node, (*path, key), depth + 1)
        self.source.value_marks.pop((*path, "<key>"), None)
        return result

    def _merged_pairs(
        self, node: yaml.MappingNode, path: Path
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """Key/value node pairs with YAML merge keys (``<<: *base``) applied, own keys winning."""
        own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                continue
            sources = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                       else [value_node])
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    self.fail(src, path, "a merge key (<<) takes a mapping or a list of mappings")
                    continue
                self.budget.left -= len(src.value)
                merged.extend(self._merged_pairs(src, path))
        own_keys = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        inherited = {}
        for k, v in merged:
            if isinstance(k, yaml.ScalarNode) and k.value not in own_keys:
                inherited.setdefault(k.value, (k, v))
        return list(inherited.values()) + own


_NULL = "tag:yaml.org,2002:null"


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _TooDeep(_TooLarge):
    pass


class _Cycle(_TooLarge):
    pass


def _check_expansion(root: yaml.Node) -> None:
    """Refuse alias bombs before expanding anything.

    The walk enforces the same budget, but only after building up to MAX_EXPANDED_NODES
    objects (about 45 MB and a second for a "billion laughs" file), and merge keys (``<<``)
    were flattened before the budget was checked, in exponential time. Here each composed
    node's expanded size is computed once (memoised by identity), so the check costs time
    proportional to the file; it raises at the smallest subtree that is too large, which is
    where the bomb sits. A self-referencing alias (``&a [*a]``) is reported as a cycle.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Cycle(node)
        if depth > MAX_DEPTH:
            raise _TooDeep(node)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        open_nodes.add(key)
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_EXPANDED_NODES:
                raise _TooLarge(node)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _deep_mark(text: str) -> tuple[int, int]:
    """Where nesting first exceeds MAX_DEPTH, found with PyYAML's (non-recursive) parser."""
    depth = -1  # the top-level collection is depth 0, as in _check_expansion
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return 1, 1


def _refusal(file: str, exc: _TooLarge) -> SpecErrors:
    line, column = _mark(exc.node)
    if isinstance(exc, _Cycle):
        message = "an alias refers to a node that contains it (a cycle); refusing it"
    elif isinstance(exc, _TooDeep):
        message = f"mappings and lists are nested more than {MAX_DEPTH} levels deep; refusing it"
    else:
        message = (f"the document expands to more than {MAX_EXPANDED_NODES:,} nodes (aliases "
                   "counted at every use); refusing it")
    return SpecErrors([SpecError(file, line, column, "", message)])


def read_yaml(text: str, file: str) -> Source:
    """Parse one YAML document; raises SpecErrors when it cannot be read at all.

    Recoverable problems (a duplicate key keeps its first value; a disallowed tag reads as
    null) are left in ``source.errors`` for the caller to report with its own findings.
    """
    source = Source(file, None)
    if not text.strip():
        raise SpecErrors([SpecError(file, 1, 1, "", "the file is empty; a spec needs at least "
                                    "'system' and 'services'")])
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:
        # PyYAML composes recursively: a few hundred nested '[' overflowed the stack and the
        # user saw a traceback. Locate the nesting with the (iterative) parser instead.
        line, column = _deep_mark(text)
        raise SpecErrors([SpecError(file, line, column, "", f"mappings and lists are nested "
                                    f"more than {MAX_DEPTH} levels deep; refusing it")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        # Say where the unfinished construct began: an unclosed '{' is only noticed at the
        # end of the file, far from where the user has to look.
        start, end = exc.context_mark, exc.problem_mark
        if context and start is not None and end is not None and start.line != end.line:
            context = f" ({exc.context} started at line {start.line + 1}, " \
                      f"column {start.column + 1})"
        if "'\\t'" in problem:
            context += "; indent with spaces: YAML does not allow tabs there"
        raise SpecErrors([SpecError(file, line, column, "",
                                    f"invalid YAML: {problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise SpecErrors([SpecError(file, 0, 0, "", f"invalid YAML: {exc}")]) from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise SpecErrors([SpecError(file, 1, 1, "", "the file holds no YAML document")])
    if len(documents) > 1:
        line, column = _mark(documents[1])
        raise SpecErrors([SpecError(file, line, column, "",
                                    "the file holds several YAML documents; a spec is one")])
    walker = _Walker(source)
    try:
        _check_expansion(documents[0])
        source.data = walker.walk(documents[0], ())
    except _TooLarge as exc:
        raise _refusal(file, exc) from None
    source.errors.extend(walker.errors)
    return source
