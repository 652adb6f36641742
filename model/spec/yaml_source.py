"""Safe YAML reading that remembers where every key and value came from.

PyYAML's ``safe_load`` loses positions, silently keeps the last of duplicate keys and expands
aliases without bound. We compose the node graph (which shares aliased nodes instead of copying
them), then walk it ourselves: plain Python data comes out, with a table from key path to
(line, column), duplicate keys reported, only standard tags accepted, and the expansion budget
enforced so a "billion laughs" file is refused after a bounded amount of work.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from faultmesh.model.spec.errors import SpecError, SpecErrors, format_path

Path = tuple[Any, ...]

# Most nodes aliases may add to a document (each alias counted at every use, beyond the nodes
# the document itself holds): an honest spec is limited by its size alone, a billion-laughs
# file is refused before anything is expanded.
MAX_EXPANDED_NODES = 200_000
# Most nodes a document may hold before any alias is expanded (a 100,000-service spec holds
# about 1.7 million; MAX_SPEC_BYTES bounds the file before this does for any real spec).
MAX_DOCUMENT_NODES = 4_000_000
# Deepest nesting of mappings and sequences accepted (real specs stay under 15).
MAX_DEPTH = 200

_STR = "tag:yaml.org,2002:str"
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
        self.budget = _Budget(MAX_EXPANDED_NODES)  # set per document by ``_walk_document``
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
            tag = node.tag
            if tag == _STR:
                return node.value  # what the constructor makes of a string, without its detour
            if tag not in _SCALAR_TAGS:
                self.fail(node, path, f"tag {tag!r} is not allowed (safe YAML only)")
                return None
            # The safe constructor's own function for the tag (int, float, bool, null), called
            # directly: ``construct_object`` would also memoise every scalar it makes.
            return self.constructor.yaml_constructors[tag](self.constructor, node)
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
        inherited: dict[Any, Any] = {}
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


class _TooManyNodes(_TooLarge):
    """The document itself (no alias expanded) holds more than MAX_DOCUMENT_NODES nodes."""


class _AliasesTooLarge(_TooLarge):
    def __init__(self, node: yaml.Node, own: int):
        super().__init__(node)
        self.own = own  # the nodes the document holds, aliases not expanded


def _check_expansion(root: yaml.Node) -> int:
    """Refuse alias bombs before expanding anything; the number of nodes the walk may build.

    The document's own nodes are what its text holds (bounded by the file size and
    MAX_DOCUMENT_NODES); aliases may add at most MAX_EXPANDED_NODES more, each counted at every
    use. Each composed node's expanded size is computed once (memoised by identity), so the
    check costs time proportional to the file, and merge keys (``<<``), which used to be
    flattened before any budget was checked, cost nothing extra. The refusal names the first
    subtree (in document order, innermost first) whose expansion alone is over the budget:
    where the bomb sits. A self-referencing alias (``&a [*a]``) is reported as a cycle.
    """
    sizes: dict[int, int] = {}
    finished: list[yaml.Node] = []  # in the order their sizes were known
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
        open_nodes.discard(key)
        sizes[key] = total
        finished.append(node)
        return total

    try:
        expanded = size(root, 0)
        own = len(sizes)
        limit = own + MAX_EXPANDED_NODES
        if expanded > limit:
            raise _AliasesTooLarge(next(n for n in finished if sizes[id(n)] > limit), own)
        return limit
    finally:
        # A recursive closure is a reference cycle (it holds its own cell), and through
        # ``finished`` it held every node of the document until a full collection: 800,000
        # objects of garbage per 20,000 services. Emptied, it holds nothing of the document.
        finished.clear()


# Files up to this size get the pure-Python parser's wording for a syntax error (it names the
# token it expected); larger ones keep libyaml's, so re-reading never costs more than ~0.3 s.
EXACT_MESSAGE_BYTES = 64 * 1024

_C_LOADER: Any = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None

# What YAML calls printable (YAML 1.1, 5.1, as PyYAML's reader checks it); anything else is
# refused before parsing so the message can name the line and column.
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD"
                            "\U00010000-\U0010FFFF]")


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def check_characters(text: str, file: str) -> None:
    """Refuse characters YAML does not allow, located; NULs between ASCII suggest UTF-16."""
    found = _NON_PRINTABLE.search(text)
    if found is None:
        return
    line, column = _position(text, found.start())
    char = found.group()
    if char == "\0":
        sample = text[:200]
        if sample.count("\0") * 3 >= len(sample):
            message = ("NUL bytes between the characters: the file looks like UTF-16 without "
                       "a byte-order mark; save it as UTF-8")
        else:
            message = "a NUL byte (U+0000) is not allowed in YAML"
    else:
        message = f"control character U+{ord(char):04X} is not allowed in YAML"
    raise SpecErrors([SpecError(file, line, column, "", message)])


class _Open:
    """A collection being composed, and the key of a mapping waiting for its value."""

    __slots__ = ("key", "node")

    def __init__(self, node: yaml.Node) -> None:
        self.node = node
        self.key: yaml.Node | None = None


def _compose_all(text: str, loader_class: Any) -> list[yaml.Node]:
    """Compose every document of ``text`` into nodes, without recursion and within budgets.

    Does what PyYAML's Composer does (anchors, aliases sharing nodes, tag resolution) from
    the parser's events, but iteratively, so nesting cannot overflow the stack, and checking
    depth and node count at every event, so a hostile file is refused as soon as it crosses
    a limit rather than after the whole file is scanned (the scanner's cost grows with the
    flow nesting, and a 1 MB flow list held ~400 MB before the old refusal).
    """
    loader = loader_class(text)
    documents: list[yaml.Node] = []
    anchors: dict[str, yaml.Node] = {}
    stack: list[_Open] = []
    # Plain scalars are resolved (int, bool, null...) after the budgets have passed, so a
    # refused file costs only the parsing of its first MAX_DOCUMENT_NODES events.
    unresolved: list[tuple[yaml.ScalarNode, Any]] = []
    count = 0
    get_event = loader.get_event
    # Hundreds of thousands of new objects that live on would trigger a full garbage
    # collection again and again (2 s of a 3 s refusal); nodes hold no cycles but aliases'.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while True:
            event = get_event()
            kind = type(event)
            if kind is yaml.StreamEndEvent:
                break
            if kind in _SKIPPED_EVENTS:
                if kind is yaml.DocumentStartEvent:
                    anchors = {}
                continue
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                stack.pop().node.end_mark = event.end_mark
                continue
            node: yaml.Node
            if kind is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise yaml.composer.ComposerError(
                        None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
                node = anchors[event.anchor]
            else:
                count += 1
                if count > MAX_DOCUMENT_NODES:
                    raise _TooManyNodes(stack[-1].node if stack else _event_node(event))
                anchor = event.anchor
                if anchor is not None and anchor in anchors:
                    raise yaml.composer.ComposerError(
                        f"found duplicate anchor {anchor!r}; first occurrence",
                        anchors[anchor].start_mark, "second occurrence", event.start_mark)
                tag = event.tag
                if kind is yaml.ScalarEvent:
                    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                           style=event.style)
                    if tag is None or tag == "!":
                        unresolved.append((node, event.implicit))
                else:
                    node_class = (yaml.SequenceNode if kind is yaml.SequenceStartEvent
                                  else yaml.MappingNode)
                    if tag is None or tag == "!":
                        tag = loader.resolve(node_class, None, event.implicit)
                    node = node_class(tag, [], event.start_mark, None,
                                      flow_style=event.flow_style)
                if anchor is not None:
                    anchors[anchor] = node
            _attach(stack, documents, node)
            if kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                if len(stack) > MAX_DEPTH:  # the top-level collection is depth 0
                    raise _TooDeep(node)
                stack.append(_Open(node))
    finally:
        loader.dispose()
        if collecting:
            gc.enable()
    resolve = loader.resolve
    for scalar, implicit in unresolved:
        scalar.tag = resolve(yaml.ScalarNode, scalar.value, implicit)
    return documents


_SKIPPED_EVENTS = (yaml.StreamStartEvent, yaml.DocumentStartEvent, yaml.DocumentEndEvent)


def _event_node(event: Any) -> yaml.Node:
    return yaml.ScalarNode("", "", event.start_mark, event.end_mark)


def _attach(stack: list[_Open], documents: list[yaml.Node], node: yaml.Node) -> None:
    if not stack:
        documents.append(node)
        return
    parent = stack[-1]
    if isinstance(parent.node, yaml.SequenceNode):
        parent.node.value.append(node)
    elif parent.key is None:
        parent.key = node
    else:
        parent.node.value.append((parent.key, node))
        parent.key = None


def _compose(text: str) -> list[yaml.Node]:
    """Compose with libyaml (C) when available; a syntax error in a small file is re-read
    with the pure-Python parser, whose messages say which token it expected."""
    if _C_LOADER is None:
        return _compose_all(text, yaml.SafeLoader)
    try:
        return _compose_all(text, _C_LOADER)
    except yaml.YAMLError:
        if len(text) > EXACT_MESSAGE_BYTES:
            raise
        _compose_all(text, yaml.SafeLoader)  # raises the same error in its own words
        raise  # the two parsers disagree: keep libyaml's finding


def _refusal(file: str, exc: _TooLarge) -> SpecErrors:
    line, column = _mark(exc.node)
    if isinstance(exc, _Cycle):
        message = "an alias refers to a node that contains it (a cycle); refusing it"
    elif isinstance(exc, _TooDeep):
        message = f"mappings and lists are nested more than {MAX_DEPTH} levels deep; refusing it"
    elif isinstance(exc, _TooManyNodes):
        message = f"the document holds more than {MAX_DOCUMENT_NODES:,} nodes; refusing it"
    else:
        own = exc.own if isinstance(exc, _AliasesTooLarge) else 0
        message = (f"the document expands to more than {MAX_EXPANDED_NODES:,} nodes beyond "
                   f"its own {own:,} (aliases counted at every use); refusing it")
    return SpecErrors([SpecError(file, line, column, "", message)])


def _char_at(text: str, mark: yaml.Mark | None) -> str:
    """The character at a mark (libyaml's wording does not quote it); '' when out of range."""
    if mark is None:
        return ""
    lines = text.split("\n", mark.line + 1)
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column] if 0 <= mark.column < len(line) else ""


def read_yaml(text: str, file: str) -> Source:
    """Parse one YAML document; raises SpecErrors when it cannot be read at all.

    Recoverable problems (a duplicate key keeps its first value; a disallowed tag reads as
    null) are left in ``source.errors`` for the caller to report with its own findings.
    """
    source = Source(file, None)
    if not text.strip():
        raise SpecErrors([SpecError(file, 1, 1, "", "the file is empty; a spec needs at least "
                                    "'system' and 'services'")])
    documents = _compose_located(text, file)
    if not documents:
        raise SpecErrors([SpecError(file, 1, 1, "", "the file holds no YAML document")])
    if len(documents) > 1:
        line, column = _mark(documents[1])
        raise SpecErrors([SpecError(file, line, column, "",
                                    "the file holds several YAML documents; a spec is one")])
    return _walk_document(source, documents[0])


def read_yaml_documents(text: str, file: str) -> list[Source]:
    """Parse every document of a multi-document YAML stream (Kubernetes manifests, say).

    Same reading rules and budgets as ``read_yaml``; empty documents are left out. Raises
    SpecErrors (located) when the text cannot be read at all.
    """
    return [_walk_document(Source(file, None), node) for node in _compose_located(text, file)]


def _compose_located(text: str, file: str) -> list[yaml.Node]:
    """The non-empty documents of ``text`` as nodes; unreadable YAML raises located errors."""
    check_characters(text, file)
    try:
        documents = _compose(text)
    except _TooLarge as exc:
        raise _refusal(file, exc) from None
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
        if "'\\t'" in problem or _char_at(text, end) == "\t":
            context += "; indent with spaces: YAML does not allow tabs there"
        raise SpecErrors([SpecError(file, line, column, "",
                                    f"invalid YAML: {problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise SpecErrors([SpecError(file, 0, 0, "", f"invalid YAML: {exc}")]) from None
    return [d for d in documents if d is not None]


def _walk_document(source: Source, node: yaml.Node) -> Source:
    """Turn one composed document into plain data with its marks, within the budgets."""
    file = source.file
    walker = _Walker(source)
    try:
        walker.budget = _Budget(_check_expansion(node))
        source.data = walker.walk(node, ())
    except _TooLarge as exc:
        raise _refusal(file, exc) from None
    source.errors.extend(walker.errors)
    return source
