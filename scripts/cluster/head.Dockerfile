# Image of the head node (cluster.yaml docker.head_image), built and pushed by build_images.sh with dist/
# (build_dist.sh) as the build context: Ray 2.60 on Python 3.11 without CUDA, plus the avspot wheel at
# the versions constraints.txt pins. The head trains nothing (resources CPU 0): torch is the CPU build of
# the pinned release (2.13.0+cpu satisfies the pin torch==2.13.0), a few GB smaller than the CUDA one.
FROM rayproject/ray:2.60.0-py311-cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /home/ray/avspot-build
COPY --chown=ray:users SHA256SUMS BUILD_ID BUILD_INFO constraints.txt ./
COPY --chown=ray:users avspot-*.whl ./
RUN sha256sum --check --strict --quiet --ignore-missing SHA256SUMS \
    && torch_pin=$(grep -i '^torch==' constraints.txt) \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX" "$torch_pin" \
    && pip install --no-cache-dir --constraint constraints.txt ./avspot-*.whl \
    && python -c "import ray, torch, avspot.search.tuning.tuner; assert ray.__version__ == '2.60.0', ray.__version__"
WORKDIR /home/ray
LABEL org.opencontainers.image.title="avspot-head" org.opencontainers.image.source="scripts/cluster/head.Dockerfile"
