#!/usr/bin/env bash
# Issue 28 item 2: does a cheap proxy rank architectures as the members' final schedule does?
# The full setting is 15 epochs with the members' padded-crop augmentation; every setting trains on
# half the Fashion-MNIST training split (24,000 images) at 28 px. Resumable: rerun the same command
# (each finished training is a file under check/trainings/). Shards: run.sh 0/2 and run.sh 1/2.
cd "$(dirname "$0")/../.." || exit 1
exec .venv/bin/effscale proxy --baseline tiny --dataset fashion_mnist --project-dir benchmarks/proxy_final/check \
    --architectures 6 --seeds 2 \
    --full "epochs=15,fraction=0.5,resolution=28,schedule=cosine,augment=padded-crop" \
    --setting "epochs=1,fraction=0.5,resolution=28,schedule=cosine" \
    --setting "epochs=3,fraction=0.5,resolution=28,schedule=cosine" \
    --setting "epochs=5,fraction=0.5,resolution=28,schedule=cosine" \
    --shard "${1:-0/1}"
