"""The fine-tuning procedure: config, which layers each phase trains, gradual unfreezing,
a keras.Model as the base, and `effscale finetune` on the command line."""

import json

import keras
import numpy as np
import pytest

import effscale
from effscale import UserError
from effscale.cli import main
from effscale.training.finetune import FineTuneConfig, finetune, set_trainable, unfrozen_prefixes


@pytest.fixture(autouse=True)
def fresh_session():
    yield
    keras.backend.clear_session()


def test_config_round_trips_and_parses_strictly():
    config = FineTuneConfig(unfreeze=-1, gradual=True, resolution=64, steps_per_epoch=3)
    assert FineTuneConfig.from_json(config.to_json()) == config
    for bad, match in [({"unfreez": 2}, "unknown fine-tune config key"), ({"unfreeze": -2}, "unfreeze"),
                       ({"head_epochs": 0, "epochs": 0}, "at least one epoch"), ({"resolution": 3}, "resolution"),
                       ({"learning_rate": 0}, "learning rates"), ({"steps_per_epoch": 0}, "steps_per_epoch")]:
        with pytest.raises(UserError, match=match):
            FineTuneConfig.from_dict(bad)
    with pytest.raises(UserError, match="does not parse"):
        FineTuneConfig.from_json("{")


def test_top_k_stages_by_prefix_and_batch_normalization_stays_frozen():
    model = effscale.build("efficientnet-b0", "w=0.25,d=0.25,r=32", classes=4)
    assert unfrozen_prefixes(model, 0) == ["top_"]
    assert unfrozen_prefixes(model, 2) == ["block6", "block7", "top_"]
    assert unfrozen_prefixes(model, -1) == ["stem_"] + [f"block{i}" for i in range(1, 8)] + ["top_"]
    names = set_trainable(model, unfrozen_prefixes(model, 2))
    expected = [l.name for l in model.layers if l.weights and not isinstance(l, keras.layers.BatchNormalization)
                and (l.name[:6] in ("block6", "block7") or l.name in ("top_conv", "predictions"))]
    assert names == expected and "block6a_expand_conv" in names and "block5c_dwconv" not in names
    assert all(not l.trainable for l in model.layers if isinstance(l, keras.layers.BatchNormalization))
    trainable_ids = {id(v) for v in model.trainable_variables}
    assert trainable_ids == {id(w) for n in names for w in model.get_layer(n).trainable_weights}
    assert set_trainable(model, []) == ["predictions"]


def test_gradual_unfreezing_adds_one_stage_per_epoch_from_the_top():
    config = FineTuneConfig(head_epochs=1, epochs=2, unfreeze=2, gradual=True, steps_per_epoch=2,
                            validation_steps=1, batch_size=8, augment=False, eager=True)
    record = finetune("tiny", "w=0.25,d=0.5,r=16", "digits", config)
    head, tuned = record["phases"]
    assert tuned["schedule"] == [{"epochs": 1, "prefixes": ["top_", "block4"]},
                                 {"epochs": 1, "prefixes": ["top_", "block3", "block4"]}]
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["transfer"] is None and record["_model"].output_shape == (None, 10)


def test_a_keras_model_gets_a_new_head(tmp_path):
    source = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=7, options=effscale.ModelOptions(bn_momentum=0.9))
    config = FineTuneConfig(head_epochs=1, epochs=1, steps_per_epoch=1, validation_steps=1, batch_size=8,
                            augment=False, eager=True)
    record = finetune(source, data="digits", config=config, out_dir=tmp_path / "out")
    model = record["_model"]
    assert model.output_shape == (None, 10) and model.get_layer("predictions").units == 10
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], source.get_layer("stem_conv").get_weights()[0])
    with pytest.raises(UserError, match="already holds"):
        finetune(source, data="digits", config=config, out_dir=tmp_path / "out")
    with pytest.raises(UserError, match="takes 16 px"):
        finetune(source, data="digits", config=config.replace(resolution=32))


def test_cli_finetune_then_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    weights = tmp_path / "source.weights.h5"
    effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=3).save_weights(weights)
    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"eager": True, "unfreeze": 3, "validation_steps": 2}))  # --unfreeze overrides
    code = main(["finetune", "--config", str(config), "tiny", "--variant", "w=0.25,d=0.5,r=16", "--dataset", "digits", "--weights", str(weights),
                 "--unfreeze", "1", "--head-epochs", "1", "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "16", "--no-augment", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "weights from keras weights file" in printed and "mismatched 1" in printed
    record = json.loads((out / "finetune.json").read_text())
    assert record["transfer"]["mismatched"] == ["predictions"] and record["phases"][1]["unfrozen_prefixes"] == ["block4", "top_"]
    assert (out / "model.keras").is_file()

    for argv, message in [
        (["finetune", "tiny", "--variant", "w=0.25,d=0.5,r=16", "--dataset", "digits", "--out", str(out)], "already holds"),
        (["finetune", "nosuch", "--dataset", "digits", "--out", str(tmp_path / "a")], "nosuch"),
        (["finetune", "tiny", "--variant", "b9x", "--dataset", "digits", "--out", str(tmp_path / "b")], "b9x"),
        (["finetune", "tiny", "--dataset", "digits", "--unfreeze", "-3", "--out", str(tmp_path / "c")], "unfreeze"),
        (["finetune", "tiny", "--dataset", "digits", "--weights", str(tmp_path / "no.h5"), "--out", str(tmp_path / "d")],
         ".keras/models"),
        (["finetune", "tiny", "--variant", "w=0.25,d=0.5,r=16", "--dataset", str(tmp_path / "no-images"),
          "--out", str(tmp_path / "e")], "no-images"),
    ]:
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's own usage error (a number out of its range)
            code = stop.code
        assert code == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("effscale: error:") and "\n" not in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "run", "source.weights.h5"]


def test_a_record_variant_without_a_name_reads_as_its_coefficients():
    from effscale.training.finetune import _variant_from_record
    from effscale.model.variants import resolve_variant
    from effscale.model.zoo import get_genotype

    tiny = get_genotype("tiny")
    assert _variant_from_record({"width": 0.5, "depth": 0.75, "resolution": 32}, tiny) == \
        resolve_variant("w=0.5,d=0.75,r=32", tiny)
    assert _variant_from_record("b1", tiny) == resolve_variant("b1", tiny)
