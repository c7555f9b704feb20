"""Fine-tune EfficientNet-B0 from ImageNet weights on Oxford-IIIT Pet: 3,680 + 3,669 photos of 37 cat and dog breeds (the 'test' split validates).

    python recipes/oxford_iiit_pet.py --data-dir ~/tensorflow_datasets [--download] --out runs/oxford_iiit_pet

ImageNet weights come from keras' cache (~/.keras/models/efficientnetb0_notop.h5 or
efficientnetb0.h5); effscale never downloads them. Any other member or searched genotype:
--genotype G --variant V --weights FILE|none. --smoke runs one step per phase.
"""

from effscale.training.finetune import FineTuneConfig, recipe_main

DATASET = "tfds:oxford_iiit_pet"
CONFIG = FineTuneConfig(head_epochs=3, head_learning_rate=1e-3, epochs=6, learning_rate=5e-5, unfreeze=2, gradual=True, batch_size=32, augment=True)


def main(argv=None):
    return recipe_main(argv, dataset=DATASET, config=CONFIG, genotype="efficientnet-b0", variant="b0",
                       weights="imagenet:b0", out="runs/oxford_iiit_pet", description=__doc__)


if __name__ == "__main__":
    main()
