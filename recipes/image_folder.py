"""Fine-tune an effscale model on your own images: one sub-folder per class.

    python recipes/image_folder.py --dataset path/to/images --out runs/my_images
    python recipes/image_folder.py --dataset path/to/images --genotype runs/family/search/best.json \
        --variant b1 --weights runs/family/members/b1/model.keras --out runs/my_images

path/to/images/CLASS/*.png|jpg|jpeg|bmp|gif; 20% of each class is held out (seeded). Default
start: EfficientNet-B0 with ImageNet weights from keras' cache (~/.keras/models/); pass
--weights FILE (a .keras model, .weights.h5 or keras .h5 file) or --weights none.
"""

from effscale.training.finetune import FineTuneConfig, recipe_main

DATASET = "images"
CONFIG = FineTuneConfig(head_epochs=5, head_learning_rate=1e-3, epochs=5, learning_rate=1e-4, unfreeze=2,
                        batch_size=16, augment=True)


def main(argv=None):
    return recipe_main(argv, dataset=DATASET, config=CONFIG, genotype="efficientnet-b0", variant="b0",
                       weights="imagenet:b0", out="runs/image_folder", description=__doc__)


if __name__ == "__main__":
    main()
