"""Block types: the one registered table that the genotype parser, the plan, the cost model, the
Keras builder, the search space and the supernet read.

A block type is a :class:`BlockType`: its genotype token (``mb`` in ``mb_r2_k3_s2_e6_c24``), the
name stages carry (``Stage.block``), a short title for messages and docs, its Keras builder, its
analytic cost function and the two facts the call sites branch on (whether it has an expansion
conv, so an expand ratio; whether the supernet's mixed layer can compute it). A new block type is
its builder plus one :func:`register` call; everything else reads this table.

>>> [t.token for t in registered()]
['mb', 'fmb', 'ds']
>>> block_type("dsconv").title, block_type("dsconv").expands
('depthwise-separable', False)
>>> from_token("fmb").name
'fused'
>>> from_token("xx")
Traceback (most recent call last):
...
effscale.common.errors.UserError: token 'xx': expected a block type first (mb, fmb, ds)

The builders of the built-in types live in :mod:`effscale.model.blocks` (Keras, imported when a block
is built, so parsing a genotype never imports Keras), their cost functions in
:mod:`effscale.model.block_cost`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from effscale.model.block_cost import dsconv_cost, fused_cost, mbconv_cost
from effscale.common.errors import UserError

_WORD = re.compile(r"^[a-z][a-z0-9]*$")


@dataclass(frozen=True)
class BlockType:
    """One block type.

    ``token``: its first token in a genotype string's stage section (lowercase letters and
    digits). ``name``: the name in ``Stage.block``, genotype JSON and the search space's block
    choices. ``title``: a short human name for messages and docs. ``build(x, block, bn)``: the
    Keras output tensor of the block on input ``x`` (``block`` an
    :class:`~effscale.model.plan.BlockPlan`, ``bn`` the BatchNormalization keyword arguments); layer
    names start with ``block.name + "_"``. ``cost(block, side, out)``: ``(trainable,
    non_trainable, multiply_adds)`` of the block for a ``side`` x ``side`` input and an ``out``
    x ``out`` output (see :mod:`effscale.model.block_cost`). ``expands``: the block has an expansion
    conv, so a stage's expand ratio means something and is searched; False fixes it at 1.
    ``mixable``: the one-shot supernet's mixed layer (an optional 1x1 expansion, a kxk
    depthwise conv, SE and a 1x1 projection, activated when the type has no expansion) computes
    this block, so differentiable search can use it.

    >>> BlockType("c", "conv", "plain conv", build=None, cost=None)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: block type 'conv': build and cost must be callables
    """

    token: str
    name: str
    title: str
    build: Callable
    cost: Callable
    expands: bool = True
    mixable: bool = False

    def __post_init__(self):
        for field in ("token", "name"):
            value = getattr(self, field)
            if not (isinstance(value, str) and _WORD.match(value)):
                raise UserError(f"block type {field} {value!r}: expected lowercase letters and digits, "
                                "starting with a letter")
        if not callable(self.build) or not callable(self.cost):
            raise UserError(f"block type {self.name!r}: build and cost must be callables")


_TYPES: dict[str, BlockType] = {}   # name -> type, in registration order


def register(kind: BlockType) -> BlockType:
    """Add ``kind`` to the table; UserError when its token or name is taken. Returns ``kind``.

    >>> register(block_type("mbconv"))
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: block type 'mbconv' (token 'mb') clashes with the registered 'mbconv' (token 'mb')
    """
    if not isinstance(kind, BlockType):
        raise UserError(f"register() takes a BlockType, got {type(kind).__name__}")
    for other in _TYPES.values():
        if other.token == kind.token or other.name == kind.name:
            raise UserError(f"block type {kind.name!r} (token {kind.token!r}) clashes with the registered "
                            f"{other.name!r} (token {other.token!r})")
    _TYPES[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a registered block type (built-in ones stay).

    >>> unregister("mbconv")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: block type 'mbconv' is built in and cannot be unregistered
    """
    if name in BUILT_IN:
        raise UserError(f"block type {name!r} is built in and cannot be unregistered")
    block_type(name)
    del _TYPES[name]


def block_type(name: str) -> BlockType:
    """The registered type called ``name``; UserError lists the known names and tokens.

    >>> block_type("mbconv").token
    'mb'
    """
    kind = _TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise UserError(f"block type {name!r}: expected one of {', '.join(_TYPES)}")
    return kind


def from_token(token: str) -> BlockType:
    """The registered type whose genotype token is ``token``; UserError lists the known tokens.

    >>> from_token("mb").name
    'mbconv'
    """
    for kind in _TYPES.values():
        if kind.token == token:
            return kind
    raise UserError(f"token {token!r}: expected a block type first ({', '.join(tokens())})")


def registered() -> tuple[BlockType, ...]:
    """Every registered type, in registration order (the built-in ones first)."""
    return tuple(_TYPES.values())


def names() -> tuple[str, ...]:
    """The registered types' names, in registration order.

    >>> names()
    ('mbconv', 'fused', 'dsconv')
    """
    return tuple(_TYPES)


def tokens() -> tuple[str, ...]:
    """The registered types' genotype tokens, in registration order."""
    return tuple(kind.token for kind in _TYPES.values())


def titles(kinds) -> str:
    """``'A'``, ``'A and B'``, ``'A, B and C'`` of the types' titles (for messages).

    >>> titles([block_type("mbconv"), block_type("dsconv")])
    'MBConv and depthwise-separable'
    """
    words = [kind.title for kind in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def build_block(x, block, bn: dict):
    """The Keras output of ``block`` (a :class:`~effscale.model.plan.BlockPlan`) on ``x``, built by its type."""
    return block_type(block.block).build(x, block, bn)


def _keras_builder(function: str) -> Callable:
    """A builder that imports :mod:`effscale.model.blocks` (and so Keras) only when it builds."""
    def build(x, block, bn):
        from effscale.model import blocks

        return getattr(blocks, function)(x, block, bn)

    build.__name__ = build.__qualname__ = function
    return build


BUILT_IN = ("mbconv", "fused", "dsconv")
register(BlockType("mb", "mbconv", "MBConv", _keras_builder("mbconv"), mbconv_cost, expands=True, mixable=True))
register(BlockType("fmb", "fused", "Fused-MBConv", _keras_builder("fused_mbconv"), fused_cost, expands=True))
register(BlockType("ds", "dsconv", "depthwise-separable", _keras_builder("depthwise_separable"), dsconv_cost,
                   expands=False, mixable=True))
