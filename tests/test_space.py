"""The search space: values <-> genotype, size, sampling, and Keras Tuner's own tuners on it."""

import itertools

import keras_tuner
import numpy as np
import pytest

import effscale
from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.search import _keras_tuner as internals
from effscale.search.space import DEFAULT_OPTIONS, SearchSpace, mutate_values, sample_values, space_size

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


@pytest.mark.parametrize("baseline", ["tiny", "efficientnet-b0", "mnasnet-a1", MICRO])
def test_values_genotype_values_round_trip_over_random_samples(baseline):
    space = SearchSpace(baseline, options={"kernel": (3, 5, 7)})
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        values = space.random_values(rng)
        genotype = space.to_genotype(values)
        assert isinstance(genotype, Genotype)
        assert Genotype.parse(genotype.encode()) == genotype
        assert space.to_values(genotype) == values
        seen.add(genotype.key)
    assert len(seen) > 250  # the samples really vary


def test_reference_is_in_its_space_and_is_the_default():
    for name in effscale.REGISTRY:
        space = SearchSpace(name)
        assert space.to_genotype(space.default_values()) == space.reference
        hp = space.hyperparameters()
        assert space.to_genotype(hp.values) == space.reference


def test_choices_follow_the_mnasnet_space():
    space = SearchSpace("efficientnet-b0")
    assert space.choices("stage3/block") == ("mbconv", "fused", "dsconv")
    assert space.choices("stage3/kernel") == (3, 5)
    assert space.choices("stage3/expand") == (1, 3, 4, 6)
    assert space.choices("stage3/se") == (0.0, 0.25)
    assert space.choices("stage3/skip") == (True, False)
    assert space.choices("stage4/repeats") == (2, 3, 4)          # reference 3, -1 / 0 / +1
    assert space.choices("stage1/repeats") == (1, 2)             # reference 1: never 0 blocks
    assert space.choices("stage4/filters") == (64, 80, 104)      # 0.75 / 1 / 1.25 x 80 = 60 / 80 / 100, rounded to 8
    assert space.choices("stage7/filters") == (240, 320, 400)
    assert space.condition("stage3/expand") == ("stage3/block", ("mbconv", "fused"))
    assert DEFAULT_OPTIONS["kernel"] == (3, 5)
    assert SearchSpace("tiny", options={"kernel": (3, 5, 7)}).choices("stage2/kernel") == (3, 5, 7)


def test_size_equals_brute_force_enumeration_of_distinct_genotypes():
    cases = [SearchSpace(MICRO, open=("block", "expand", "skip")),
             SearchSpace(MICRO, open=("block", "kernel", "repeats", "filters"), options={"expand": (1, 6)}),
             SearchSpace("tiny", open=("block", "expand"), stages=(2, 4), options={"block": ("mbconv", "dsconv")})]
    for space in cases:
        hp = space.hyperparameters()
        genotypes = set()
        count = 0
        names = space.names
        for combo in itertools.product(*(space.choices(n) for n in names)):
            values = {n: v for n, v in zip(names, combo) if space.is_active(n, dict(zip(names, combo)))}
            genotypes.add(space.to_genotype(values).encode())
            count += 1
        assert space.size == len(genotypes) == space_size(hp)
    # Hand count of the tiny space: per stage (2 block types with 4 expands + dsconv) = 9 block
    # options, x 2 kernels x 2 SE x 2 skip, x repeats (2, 2, 3, 2) x filters (2, 2, 3, 3).
    assert SearchSpace("tiny").size == 9 * 8 * 2 * 2 * 9 * 8 * 2 * 2 * 9 * 8 * 3 * 3 * 9 * 8 * 2 * 3


def test_closed_choices_and_stages_keep_the_reference():
    space = SearchSpace("tiny", open=("kernel",), stages=(3,))
    assert space.names == ("stage3/kernel",)
    g = space.to_genotype({"stage3/kernel": 3})
    ref = space.reference
    assert g.stages[2].kernel == 3
    assert [s for i, s in enumerate(g.stages) if i != 2] == [s for i, s in enumerate(ref.stages) if i != 2]
    with pytest.raises(UserError, match="not in the space"):
        space.to_values(ref.replace(stages=(ref.stages[0].__class__(**{**ref.stages[0].to_dict(), "kernel": 5}),)
                                    + ref.stages[1:]))


def test_out_of_space_values_and_genotypes_are_user_errors():
    space = SearchSpace("tiny")
    values = space.default_values()
    with pytest.raises(UserError, match="stage2/kernel"):
        space.to_genotype({**values, "stage2/kernel": 9})
    missing = dict(values)
    del missing["stage1/se"]
    with pytest.raises(UserError, match="missing"):
        space.to_genotype(missing)
    with pytest.raises(UserError, match="stem, head"):
        space.to_values("efficientnet-b0")
    ref = space.reference
    with pytest.raises(UserError, match="3 stages"):
        space.to_values(ref.replace(stages=ref.stages[:3]))
    with pytest.raises(UserError):
        SearchSpace("tiny", open=("kernal",))
    with pytest.raises(UserError):
        SearchSpace("tiny", options={"kernel": (4,)})
    with pytest.raises(UserError):
        SearchSpace("tiny", stages=(9,))


def test_dsconv_has_no_expand_choice_and_round_trips():
    space = SearchSpace("tiny")
    values = space.default_values()
    values["stage2/block"] = "dsconv"
    del values["stage2/expand"]
    g = space.to_genotype(values)
    assert g.stages[1].block == "dsconv" and g.stages[1].expand == 1
    assert space.to_values(g) == values


def test_mutation_changes_exactly_one_choice():
    space = SearchSpace("tiny")
    hp = space.hyperparameters()
    rng = np.random.default_rng(3)
    for _ in range(200):
        parent = sample_values(hp, rng)
        child = mutate_values(hp, parent, rng)
        space.to_genotype(child)  # valid
        changed = [k for k in set(parent) | set(child) if parent.get(k) != child.get(k)]
        # One choice changes; a block change may also add or drop its conditional expand ratio.
        primary = [k for k in changed if not k.endswith("/expand")]
        assert len(primary) <= 1 and len(changed) >= 1
        if primary:
            assert all(k == primary[0].replace("/block", "/expand") for k in changed if k != primary[0])


def _micro_data(n=96):
    from effscale.data.pipeline import DataSpec, load_data

    data = load_data(DataSpec("digits", resolution=16), batch_size=32)
    images, labels = [], []
    for x, y in data.train.unbatch().take(n):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.stack(images), np.array(labels)


@pytest.mark.slow
def test_keras_tuner_random_search_over_the_hypermodel_yields_only_valid_genotypes(tmp_path):
    from effscale.search import SearchHyperModel

    space = SearchSpace(MICRO)
    x, y = _micro_data()
    hypermodel = SearchHyperModel(space, classes=10, steps_per_epoch=-(-len(x) // 32))  # keras' batch 32
    tuner = keras_tuner.RandomSearch(hypermodel, objective=keras_tuner.Objective("reward", "max"), max_trials=2,
                                     seed=7, directory=str(tmp_path), project_name="rs")
    tuner.search(x, y, validation_data=(x[:32], y[:32]), epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    for trial in trials:
        genotype = space.to_genotype(trial.hyperparameters.values)
        assert space.to_values(genotype) == {k: v for k, v in trial.hyperparameters.values.items()}
        assert trial.metrics.exists("reward") and 0 <= trial.score <= 1.5
    best = space.to_genotype(tuner.get_best_hyperparameters()[0].values)
    assert effscale.build(best, "w=1,d=1,r=16", classes=10).output_shape == (None, 10)


def test_keras_tuner_grid_search_oracle_walks_the_whole_space(tmp_path):
    # Per stage: (MBConv or Fused with expand 2 or 6, or depthwise-separable) x SE on / off = 10.
    space = SearchSpace(MICRO, open=("block", "expand", "se"), options={"expand": (2, 6)})
    oracle = keras_tuner.oracles.GridSearchOracle(objective=keras_tuner.Objective("reward", "max"),
                                                  max_trials=1000, hyperparameters=space.hyperparameters())
    internals.set_project_dir(oracle, str(tmp_path), "grid")
    seen = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        seen.append(space.to_genotype(trial.hyperparameters.values).encode())
        oracle.update_trial(trial.trial_id, {"reward": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(seen) == len(set(seen)) == space.size == 10 * 10


def test_the_wide_space_opens_activation_stem_and_head_and_round_trips():
    from effscale.model.block_types import block_type
    from effscale.search.space import WIDE

    space = SearchSpace("tiny", **WIDE)
    ref = space.reference  # stem16_head128_res32_swish
    assert space.choices("network/stem") == (8, 16, 32) and space.choices("network/head") == (64, 128, 256)
    assert space.choices("stage1/activation") == ("swish", "relu", "hswish")
    assert space.choices("stage1/kernel") == (3, 5, 7) and space.choices("stage1/filters") == (8, 16, 24, 32)
    values = {**space.default_values(), "network/stem": 32, "network/head": 64, "stage2/activation": "relu",
              "stage3/activation": "swish"}
    genotype = space.to_genotype(values)
    assert (genotype.stem, genotype.head) == (32, 64)
    # the network's own activation is written as no override, another one as the stage's
    assert [s.activation for s in genotype.stages] == [None, "relu", None, None]
    assert space.to_values(genotype) == values
    assert "_relu" in genotype.encode() and Genotype.parse(genotype.encode()) == genotype
    model = effscale.build(genotype, "w=1,d=1,r=16", classes=10)
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 64
    assert model.get_layer("block2a_expand_activation").activation.__name__ == "relu"
    # every random point of the wide space is a genotype whose values come back
    rng = np.random.default_rng(3)
    for _ in range(50):
        sampled = space.random_values(rng)
        assert space.to_values(space.to_genotype(sampled)) == sampled
    # the exact size: 3 x 3 network widths times each stage's product
    per_stage = 1
    for number in space.stages:
        ref_stage = ref.stages[number - 1]
        others = len(space.choices(f"stage{number}/kernel")) * len(space.choices(f"stage{number}/se")) * 2 * \
            len(space.choices(f"stage{number}/repeats")) * len(space.choices(f"stage{number}/filters")) * 3
        blocks = space.choices(f"stage{number}/block")
        expands = len(space.choices(f"stage{number}/expand"))
        per_stage *= others * sum(expands if block_type(b).expands else 1 for b in blocks)
        assert ref_stage.activation is None
    assert space.size == 9 * per_stage


def test_closed_extra_choices_leave_the_default_space_and_its_saved_form_as_they_were():
    space = SearchSpace("tiny")
    assert space.size == 23219011584 and not any("activation" in n or n.startswith("network/") for n in space.names)
    assert set(space.to_dict()["options"]) == set(DEFAULT_OPTIONS) | {"block"}
    wide_stem = SearchSpace("tiny", open=("stem",))
    assert set(wide_stem.to_dict()["options"]) == set(DEFAULT_OPTIONS) | {"block", "stem"}
    assert SearchSpace.from_dict(wide_stem.to_dict()).size == wide_stem.size == 3
    with pytest.raises(UserError, match="stem, head"):
        space.to_values(wide_stem.to_genotype({"network/stem": 32}))
    with pytest.raises(UserError, match="activation choices must be among"):
        SearchSpace("tiny", open=("activation",), options={"activation": ("tanh",)})
    with pytest.raises(UserError, match="head choices are multipliers"):
        SearchSpace("tiny", open=("head",), options={"head": (0,)})
    closed_activation = space.reference.replace(stages=(space.reference.stages[0].__class__(
        **{**space.reference.stages[0].__dict__, "activation": "relu"}),) + space.reference.stages[1:])
    with pytest.raises(UserError, match="activation"):
        space.to_values(closed_activation)


def test_open_choices_wide_names_the_wide_space_in_a_config_and_on_the_command_line():
    from effscale.search import SearchConfig
    from effscale.search.space import WIDE

    wide = SearchSpace("tiny", **WIDE)
    assert SearchConfig("tiny", open_choices="wide").space.size == wide.size
    narrower = SearchConfig("tiny", open_choices=["wide"], options={"kernel": (3, 5)}).space
    assert narrower.choices("stage1/kernel") == (3, 5) and narrower.choices("network/stem") == (8, 16, 32)
    again = SearchConfig.from_dict(SearchConfig("tiny", open_choices="wide").to_dict())
    assert again.space.to_dict() == wide.to_dict()
