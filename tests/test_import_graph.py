"""The effscale modules import each other without cycles, counting imports inside functions.

The graph is read from the source with ``ast``: an edge A -> B for every ``import B`` /
``from B import x`` (or ``from P import B`` where B is a module) anywhere in A, except under
``if TYPE_CHECKING:``, which never runs. Importing ``effscale.search.run`` also runs the package's
``__init__``; that implicit edge is not counted (every package's re-exports would be a cycle).
"""

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "effscale")
MAX_LINES = 500


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def _runtime_nodes(tree):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        with open(path) as handle:
            tree = ast.parse(handle.read(), path)
        for node in _runtime_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_imports_inside_functions_and_finds_a_cycle():
    graph = import_graph()
    assert "effscale.search.run" in graph["effscale.search"]        # a package's re-export
    assert "effscale.search.registry" in graph["effscale.cli.search"]  # an import inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_effscale_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (break them by moving the shared code down):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_no_module_is_over_500_lines():
    long = {name: n for name, path in _modules().items() if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


# The stages in the order a family run takes them; a module imports only its own stage and the
# ones before it. `effscale/__init__.py` (the public API) sits above all of them.
STAGE_ORDER = ("common", "model", "data", "latency", "export", "training", "search", "family", "cli")
# Known exceptions, each with its reason; an entry here is a cut still to make.
STAGE_EXCEPTIONS = {
    # The dataset preflight check reads a data source's own check; it belongs with the data sources.
    ("effscale.common.preflight", "effscale.data.pipeline"),
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_a_stage_imports_only_the_stages_before_it():
    backwards = []
    for source, targets in import_graph().items():
        for target in targets:
            a, b = _stage(source), _stage(target)
            if a is None or b is None or a == b or (source, target) in STAGE_EXCEPTIONS:
                continue
            if STAGE_ORDER.index(b) > STAGE_ORDER.index(a):
                backwards.append(f"{source} -> {target}")
    assert not backwards, "imports against the stage order " + " < ".join(STAGE_ORDER) + ":\n" + "\n".join(sorted(backwards))


def test_the_stage_check_sees_a_backward_import():
    assert STAGE_ORDER.index(_stage("effscale.training.train")) > STAGE_ORDER.index(_stage("effscale.model.cost"))
    assert set(filter(None, map(_stage, import_graph()))) <= set(STAGE_ORDER)
