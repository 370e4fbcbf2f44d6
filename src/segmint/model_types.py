"""The exact types a segmint model file may contain, and how a file's types are listed
without loading it.

Why an exact list: skops rebuilds whatever a file names, and a name prefix such as
``numpy.`` or ``builtins.`` also covers functions (``numpy.full_like``,
``numpy.testing.runstring``, ``numpy.vectorize``, ``builtins.eval``). Chained in a
``Pipeline`` of ``FunctionTransformer`` they ran shell commands during ``segmint predict``.
So a model may hold only the classes segmint itself writes (``ALLOWED_TYPES``), built by
the node kinds segmint itself writes (``ALLOWED_NODES``: no functions, methods, partials,
``operator`` callers or reduce-constructors at all). ``save`` refuses to write a file
outside these lists (a segmint bug, not the user's), and
``tests/test_model_security.py`` fits every clustering method, the churn model and a
customer table with categories, and checks that what they write stays inside them — so
the lists are derived from what ``save`` writes and stay complete.

What skops 0.16 trusts by default, and why ``get_untrusted_types`` alone is not enough:
``skops.io.get_untrusted_types`` lists only what skops does *not* trust by default, and
``skops.io.load(trusted=...)`` adds the given names to those defaults. The defaults
(``skops/io/_trusted_types.py`` and each node's ``_get_trusted``) are:

- every public scikit-learn estimator from ``sklearn.utils.all_estimators()`` (208 with
  scikit-learn 1.9) — which includes ``FunctionTransformer`` (calls whatever function it
  holds) and ``Pipeline``;
- some scikit-learn internals (16 ``sklearn._loss`` links and losses, ``_BinMapper``) and
  the 16 Cython losses a ``LossNode`` may build;
- every public ``numpy`` ufunc (90) and ``scipy.special`` ufunc (230) as a *function*
  value: callables (``numpy.add`` is harmless arithmetic, but it is a function all the
  same, and ``FunctionTransformer(numpy.add)`` can silently rewrite a model's input);
- ``builtins`` int/float/str/bool, list/set/map/tuple/dict/slice/bytes/bytearray,
  ``collections.OrderedDict``, numpy dtypes and scalar types, ``numpy.ndarray``,
  ``numpy.ma.MaskedArray``, ``numpy.random.RandomState``/``Generator`` and the numpy bit
  generators, scipy sparse matrices.

So a file with ``FunctionTransformer(numpy.add)`` reports nothing untrusted, and
``FunctionTransformer`` itself never appears in ``get_untrusted_types``. Hence segmint
lists *every* type the file names (``declared_nodes``, read from ``schema.json`` without
building anything) and checks those against ``ALLOWED_TYPES`` as well as skops's own
untrusted list (which adds names skops derives itself: a ``Generator``'s bit generator,
a bound method's name). Once every type the file names is on the list, passing the
file's skops-untrusted types (all on the list) to ``skops.io.load`` adds nothing beyond it.

Allowed types skops itself does not trust by default: ``numpy.dtype``, segmint's own
classes (unknown to skops) and ``TreePredictor`` (the churn model's
``HistGradientBoostingClassifier``). skops's reason for ``TreePredictor``: a crafted file
can hold out-of-range node indices that crash the process on predict. segmint accepts it
only in a file whose HMAC signature proves this installation wrote it
(``segmint.signing``); the allow-list stops code execution even when the signature is
forged or the key stolen.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

# Class names found in segmint's model files (see the module docstring and
# tests/test_model_security.py::test_saved_types_are_exactly_allowed). Classes only.
ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # containers and JSON values
        "builtins.dict",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        # numpy data
        "numpy.dtype",
        "numpy.float32",
        "numpy.float64",
        "numpy.ndarray",
        "numpy.uint64",
        "numpy.random._generator.Generator",
        "numpy.random.PCG64",
        # segmint's own classes
        "segmint.cluster.base.Assigner",
        "segmint.cluster.prototypes.PrototypeAssigner",
        "segmint.preprocess.LogClip",
        # the preprocessor
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        # Gaussian mixture segments
        "sklearn.mixture._gaussian_mixture.GaussianMixture",
        # the churn model (HistGradientBoostingClassifier and its parts)
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.preprocessing._label.LabelEncoder",
    }
)

# skops node kinds ("__loader__") segmint writes. Absent on purpose: FunctionNode,
# MethodNode, PartialNode, OperatorFuncNode, ConstructorFromReduceNode, TreeNode, ...
ALLOWED_NODES: frozenset[str] = frozenset(
    {
        "DictNode",
        "DTypeNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomGeneratorNode",
        "SliceNode",
        "TupleNode",
        "TypeNode",
    }
)


def _schema(data: bytes) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("schema.json"))


def _bit_generator(state: dict) -> str:
    """The bit generator class a ``numpy.random.Generator`` node names (as skops reads it)."""
    try:
        name = json.loads(state["content"]["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError):
        return "<unreadable bit generator>"
    return name if isinstance(name, str) else "<unreadable bit generator>"


def declared_nodes(data: bytes) -> set[tuple[str, str]]:
    """Every ``(type name, node kind)`` a skops file names, read from its ``schema.json``
    without building anything. Every dict in the schema that carries ``__class__`` or
    ``__loader__`` counts, used by skops or not, so this is a superset of what a load
    would build. Malformed entries come back as ``<malformed ...>`` names (never allowed)."""
    found: set[tuple[str, str]] = set()
    stack: list[Any] = [_schema(data)]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        if not ({"__class__", "__module__", "__loader__"} & node.keys()):
            continue  # plain data (or a bare memo reference), names no type
        module, cls, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
        if not (isinstance(module, str) and isinstance(cls, str) and isinstance(loader, str)):
            found.add((f"<malformed {module!r}.{cls!r}>", str(loader)))
            continue
        found.add((f"{module}.{cls}", loader))
        if loader == "RandomGeneratorNode":
            found.add((f"numpy.random.{_bit_generator(node)}", "RandomGeneratorNode"))
        elif loader == "MethodNode":
            content = node.get("content")
            func = content.get("func") if isinstance(content, dict) else None
            found.add((f"{module}.{cls}.{func}", loader))
    return found


@dataclass(frozen=True)
class Audit:
    """A model file's types, listed without building anything."""

    declared: frozenset[str]  # every type name the file names
    untrusted: tuple[str, ...]  # what skops itself does not trust by default
    unexpected: tuple[str, ...]  # outside the allow-list: the file must not be loaded


def audit(data: bytes) -> Audit:
    """List a skops file's types and those outside the allow-list (a type built by a node
    kind segmint never writes is listed with that kind). Raises what zipfile/json/skops
    raise on a file that is not a skops model."""
    import skops.io as sio

    nodes = declared_nodes(data)
    untrusted = tuple(sio.get_untrusted_types(data=data))
    bad = set()
    for name, loader in nodes:
        if name not in ALLOWED_TYPES:
            bad.add(name if loader in ALLOWED_NODES else f"{name} (as {loader})")
        elif loader not in ALLOWED_NODES:
            bad.add(f"{name} (as {loader})")
    bad.update(t for t in untrusted if t not in ALLOWED_TYPES)
    return Audit(frozenset(n for n, _ in nodes), untrusted, tuple(sorted(bad)))
