"""No public function of the package takes more than 10 parameters (issue 26 item 3).

Counted from the source with ast: positional, keyword-only, ``*args`` and ``**kwargs`` each count
one; ``self`` / ``cls`` do not. Public: a function or method (``__init__`` included) whose name and
whose module's and class's names do not start with an underscore. Settings that belong together
travel as one value instead (DataSpec, Recipe, Execution, ModelOptions, Timing, ProxyCheck,
SupernetOptions; keras-tuner's own Oracle arguments through ``**kwargs``).
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "effscale"
LIMIT = 10


def parameter_count(node: ast.FunctionDef, method: bool) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args]
    count = len(names) + len(args.kwonlyargs) + bool(args.vararg) + bool(args.kwarg)
    return count - 1 if method and names and names[0] in ("self", "cls") else count


def public_counts(tree: ast.AST) -> dict[str, int]:
    found = {}

    def walk(node, prefix, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                walk(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not child.name.startswith("_") or child.name == "__init__"):
                found[prefix + child.name] = parameter_count(child, in_class)

    walk(tree, "", False)
    return found


def test_the_count_is_the_documented_one():
    tree = ast.parse("def f(a, b=1, *args, c, d=2, **kw): pass\n"
                     "class C:\n    def __init__(self, x, *, y): pass\n    def _hidden(self, *a, **k): pass\n"
                     "def _private(a, b, c, d, e, f, g, h, i, j, k, l): pass")
    assert public_counts(tree) == {"f": 6, "C.__init__": 2}


def test_no_public_function_takes_more_than_ten_parameters():
    over = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if any(part.startswith("_") and part != "__init__.py" for part in relative.split("/")):
            continue
        for name, count in public_counts(ast.parse(path.read_text())).items():
            if count > LIMIT:
                over[f"{relative}:{name}"] = count
    assert not over, f"public functions over {LIMIT} parameters (group them, e.g. in DataSpec): {over}"
