"""Fine-tune EfficientNet-B0 from ImageNet weights on tf_flowers: 3,670 flower photos in 5 classes (train split only; the last 20% is held out).

    python recipes/tf_flowers.py --data-dir ~/tensorflow_datasets [--download] --out runs/tf_flowers

ImageNet weights come from keras' cache (~/.keras/models/efficientnetb0_notop.h5 or
efficientnetb0.h5); effscale never downloads them. Any other member or searched genotype:
--genotype G --variant V --weights FILE|none. --smoke runs one step per phase.
"""

from effscale.training.finetune import FineTuneConfig, recipe_main

DATASET = "tfds:tf_flowers"
CONFIG = FineTuneConfig(head_epochs=3, head_learning_rate=1e-3, epochs=5, learning_rate=1e-4, unfreeze=2, batch_size=32, augment=True)


def main(argv=None):
    return recipe_main(argv, dataset=DATASET, config=CONFIG, genotype="efficientnet-b0", variant="b0",
                       weights="imagenet:b0", out="runs/tf_flowers", description=__doc__)


if __name__ == "__main__":
    main()
