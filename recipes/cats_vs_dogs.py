"""Fine-tune EfficientNet-B0 from ImageNet weights on Cats vs Dogs: 23,262 photos in 2 classes (train split only; the last 20% is held out).

    python recipes/cats_vs_dogs.py --data-dir ~/tensorflow_datasets [--download] --out runs/cats_vs_dogs

ImageNet weights come from keras' cache (~/.keras/models/efficientnetb0_notop.h5 or
efficientnetb0.h5); effscale never downloads them. Any other member or searched genotype:
--genotype G --variant V --weights FILE|none. --smoke runs one step per phase.
"""

from effscale.training.finetune import FineTuneConfig, recipe_main

DATASET = "tfds:cats_vs_dogs"
CONFIG = FineTuneConfig(head_epochs=2, head_learning_rate=1e-3, epochs=2, learning_rate=1e-4, unfreeze=1, batch_size=32, augment=True)


def main(argv=None):
    return recipe_main(argv, dataset=DATASET, config=CONFIG, genotype="efficientnet-b0", variant="b0",
                       weights="imagenet:b0", out="runs/cats_vs_dogs", description=__doc__)


if __name__ == "__main__":
    main()
