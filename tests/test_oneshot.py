"""One-shot search over the default space: filters as exact channel masks, block type and skip
as mixed branches, the expected cost exact with filters and block open, and the default
`effscale search --oracle differentiable` finishing on digits."""

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

import effscale
import effscale.cli
from effscale.model.block_types import registered
from effscale.model.cost import cost
from effscale.model.genotype import Genotype
from effscale.search import design_variant
from effscale.search.oneshot.differentiable import CostTable, argmax_values, top_values
from effscale.search.space import SearchSpace
from effscale.search.oneshot.supernet import Supernet, block_specs, supernet_space

# Stage 1 strides (8 -> 8 channels at 4 px), stage 2 does not, so its first layer's shortcut
# exists exactly when stage 1's filters equal its own. Filters choices: stage 1 (8, 16), stage 2 (16, 24).
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r2_k3_s1_e2_c16"
VARIANT = "w=1,d=1,r=8"
MIXABLE = tuple(t.name for t in registered() if t.mixable)
NOT_MIXABLE = tuple(t for t in registered() if not t.mixable)


def _one_hot(space, values):
    return {n: tf.one_hot(space.choices(n).index(values[n]), len(space.choices(n))) for n in space.names}


def _copy_sliced(wide, narrow):
    """Give ``narrow`` the leading slice of every weight of ``wide`` (the channels the masks keep)."""
    assert len(wide.weights) == len(narrow.weights)
    for big, small in zip(wide.weights, narrow.weights):
        assert big.path == small.path
        small.assign(big.numpy()[tuple(slice(0, n) for n in small.shape)])


def test_the_default_space_keeps_every_choice_but_the_block_types_it_cannot_mix():
    space = SearchSpace(MICRO)
    searched, note = supernet_space(space)
    assert searched.names == space.names  # nothing closed outright: filters, block, skip, repeats all searched
    assert searched.choices("stage2/block") == MIXABLE == ("mbconv", "dsconv")
    assert note == "differentiable search: Fused-MBConv is not mixable, so stage block choices are MBConv " \
                   "and depthwise-separable"
    plain = SearchSpace(MICRO, open=("kernel", "filters", "skip", "repeats"))
    assert supernet_space(plain) == (plain, None)  # nothing to close: the space itself, no line
    # Only non-mixable types offered: the block choice is closed at the reference's.
    only = SearchSpace(MICRO, open=("block", "kernel"), options={"block": ("fused",)})
    closed, note = supernet_space(only)
    assert closed.names == ("stage1/kernel", "stage2/kernel")
    assert note.endswith("so block is closed at the reference's")


@pytest.mark.slow
@pytest.mark.parametrize("training", [False, True])
def test_filter_masks_at_a_one_hot_weight_equal_the_narrow_network_with_shared_weights(training):
    open_ = ("block", "kernel", "expand", "se", "skip", "filters")
    options = {"expand": (1, 2, 6)}  # the same expand choices whatever the reference block type
    wide_space, _ = supernet_space(SearchSpace(MICRO, open=open_, options=options))
    images = tf.random.stateless_uniform((4, 8, 8, 3), (1, 2)) * 255
    wide = Supernet(wide_space, VARIANT, classes=10)
    base = wide_space.default_values()
    wide(images, _one_hot(wide_space, base))
    for i, weight in enumerate(wide.weights):  # nonzero BN statistics and biases, so unmasked channels would show
        noise = tf.random.stateless_normal(weight.shape, (3, i)) * 0.3
        weight.assign(noise + (1.5 if "variance" in weight.path else 0.0))
    checked = 0
    combos = itertools.product(wide_space.choices("stage1/filters"), enumerate(wide_space.choices("stage2/filters")),
                               wide_space.choices("stage2/block"), (True, False))
    for f1, (i, f2), block, skip in combos:
        expand = (6, 1)[i]  # both expand forms (a conv, the input itself) with every block type and skip
        values = dict(base, **{"stage1/filters": f1, "stage2/filters": f2, "stage2/block": block,
                               "stage2/skip": skip, "stage2/expand": expand, "stage2/kernel": 5})
        genotype = wide_space.to_genotype(values)
        narrow_space, _ = supernet_space(SearchSpace(genotype, open=open_[:-1], options=options))
        assert narrow_space.names == tuple(n for n in wide_space.names if not n.endswith("/filters"))
        narrow = Supernet(narrow_space, VARIANT, classes=10)
        narrow_values = {n: values[n] for n in narrow_space.names}
        narrow(images, _one_hot(narrow_space, narrow_values))
        _copy_sliced(wide, narrow)
        got = wide(images, _one_hot(wide_space, values), training=training).numpy()
        want = narrow(images, _one_hot(narrow_space, narrow_values), training=training).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        checked += 1
    assert checked == 2 * 2 * 2 * 2
    # The masks matter: a different filter choice gives a different output.
    other = dict(base, **{"stage2/filters": max(wide_space.choices("stage2/filters"))})
    assert not np.allclose(wide(images, _one_hot(wide_space, other)).numpy(),
                           wide(images, _one_hot(wide_space, base)).numpy())


def test_block_specs_carry_every_filters_width_and_the_input_width_of_the_previous_stage():
    space, _ = supernet_space(SearchSpace(MICRO))
    specs = block_specs(space, VARIANT)
    # round_filters by hand: 8 * 0.75 = 6 -> 8, 8 * 1.25 = 10 -> 8 < 9 -> 16; 16 * 0.75 = 12 -> 16, 16 * 1.25 = 20 -> 24
    # Stages at their most repeats: 2 and 3 layers.
    assert [s.filters_out for s in specs] == [(8, 16), (8, 16), (16, 24), (16, 24), (16, 24)]
    assert [s.filters_in for s in specs] == [(8,), (8, 16), (8, 16), (16, 24), (16, 24)]
    assert "filters_in" not in specs[0].choice_names
    assert [s.choice_names["filters_in"] for s in specs[1:]] == ["stage1/filters"] * 2 + ["stage2/filters"] * 2
    assert all(s.blocks == MIXABLE for s in specs)


def _macs(genotype):
    return cost(genotype, design_variant(genotype), classes=10).multiply_adds


def test_expected_cost_is_exact_one_hot_with_filters_and_block_open():
    space = SearchSpace(MICRO)  # every block type, mixable or not: the cost table is analytic
    table = CostTable(space, classes=10, kind="macs")
    rng = np.random.default_rng(0)
    for _ in range(25):
        values = space.random_values(rng)
        # Inactive choices (expand of a depthwise-separable stage) get any distribution: they must not count.
        probabilities = {n: (np.eye(len(space.choices(n)))[space.choices(n).index(values[n])] if n in values
                             else rng.dirichlet(np.ones(len(space.choices(n))))) for n in space.names}
        assert table.expected(probabilities) == pytest.approx(_macs(space.to_genotype(values)), rel=1e-9)


def test_expected_cost_is_the_mean_over_the_space_when_uniform_with_filters_open():
    space = SearchSpace(MICRO, open=("block", "filters", "kernel", "expand"), options={"expand": (1, 6)})
    names = list(space.names)
    every = [dict(zip(names, combo)) for combo in itertools.product(*(space.choices(n) for n in names))]
    uniform = {n: np.full(len(space.choices(n)), 1.0 / len(space.choices(n))) for n in names}
    mean = np.mean([_macs(space.to_genotype(values)) for values in every])
    assert CostTable(space, classes=10).expected(uniform) == pytest.approx(mean, rel=1e-9)
    tf_value = CostTable(space, classes=10).expected({n: tf.constant(p) for n, p in uniform.items()})
    assert float(tf_value) == pytest.approx(mean, rel=1e-5)


def test_derived_genotypes_choose_the_argmax_values():
    space, _ = supernet_space(SearchSpace(MICRO))
    rng = np.random.default_rng(1)
    probabilities = {n: rng.dirichlet(np.ones(len(space.choices(n)))) for n in space.names}
    values = argmax_values(space, probabilities)
    want = {n: space.choices(n)[int(np.argmax(p))] for n, p in probabilities.items()}
    assert values == {n: v for n, v in want.items() if space.is_active(n, want)}
    best = top_values(space, probabilities, 3, SearchSpace(MICRO))
    assert best[0] == values and len({json.dumps(b, sort_keys=True) for b in best}) == 3
    assert all(SearchSpace(MICRO).to_values(SearchSpace(MICRO).to_genotype(b)) == b for b in best)


@pytest.mark.slow
def test_default_space_differentiable_search_finishes_via_the_cli(tmp_path, capsys):
    directory = tmp_path / "project"
    assert effscale.cli.main(["search", "--baseline", MICRO, "--oracle", "differentiable", "--trials", "1",
                              "--epochs", "1", "--resolution", "8", "--supernet-epochs", "1",
                              "--project-dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "does not search" not in out
    closed = [line for line in out.splitlines() if "not mixable" in line]
    assert closed == ["differentiable search: Fused-MBConv is not mixable, so stage block choices are MBConv "
                      "and depthwise-separable"]
    genotype = effscale.load_genotype(str(directory / "best_genotype.json"))
    assert isinstance(genotype, Genotype)
    space = SearchSpace(MICRO)
    history = json.load(open(directory / "supernet" / "logits.json"))["epochs"]
    last = history[-1]
    assert set(last["probabilities"]) == set(space.names)  # every default choice was searched
    picked = {n: last["choices"][n][int(np.argmax(p))] for n, p in last["probabilities"].items()}
    assert space.to_genotype(picked) == genotype
    search = json.load(open(directory / "search.json"))
    assert search["config"]["oracle"] == "differentiable"
    assert (directory / "trials.csv").exists() and (directory / "pareto.csv").exists()
    model = effscale.build(genotype, VARIANT, classes=10)
    assert model(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 10)
