# Image of the GPU workers (cluster.yaml docker.worker_image), built and pushed by build_images.sh with
# dist/ (build_dist.sh) as the build context: Ray 2.60 on Python 3.11 with CUDA, plus the avspot wheel
# and every dependency at the version constraints.txt pins (torch 2.13.0 and its CUDA 13 wheels from
# PyPI). A worker that boots from it pulls the image and installs nothing.
FROM rayproject/ray:2.60.0-py311-gpu
WORKDIR /home/ray/avspot-build
COPY --chown=ray:users SHA256SUMS BUILD_ID BUILD_INFO constraints.txt ./
COPY --chown=ray:users avspot-*.whl ./
RUN sha256sum --check --strict --quiet --ignore-missing SHA256SUMS \
    && pip install --no-cache-dir --constraint constraints.txt ./avspot-*.whl \
    && python -c "import ray, torch, avspot.search.tuning.tuner; assert ray.__version__ == '2.60.0', ray.__version__"
WORKDIR /home/ray
LABEL org.opencontainers.image.title="avspot-worker" org.opencontainers.image.source="scripts/cluster/worker.Dockerfile"
