"""Fine-tune EfficientNet-B0 from ImageNet weights on CIFAR-10: 50,000 + 10,000 32x32 photos in 10 classes, upsampled to the variant's resolution.

    python recipes/cifar10.py --data-dir ~/tensorflow_datasets [--download] --out runs/cifar10

ImageNet weights come from keras' cache (~/.keras/models/efficientnetb0_notop.h5 or
efficientnetb0.h5); effscale never downloads them. Any other member or searched genotype:
--genotype G --variant V --weights FILE|none. --smoke runs one step per phase.
"""

from effscale.training.finetune import FineTuneConfig, recipe_main

DATASET = "tfds:cifar10"
CONFIG = FineTuneConfig(head_epochs=2, head_learning_rate=1e-3, epochs=5, learning_rate=1e-4, unfreeze=3, batch_size=64, augment=True)


def main(argv=None):
    return recipe_main(argv, dataset=DATASET, config=CONFIG, genotype="efficientnet-b0", variant="b0",
                       weights="imagenet:b0", out="runs/cifar10", description=__doc__)


if __name__ == "__main__":
    main()
