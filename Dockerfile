# syntax=docker/dockerfile:1
# One image for every LiveWitness stage: `livewitness api|recorder|transcriber|indexer`
# (docker-compose.yml runs one container per stage; docs/deploy.md).
#
# No apt packages: ffmpeg comes from the imageio-ffmpeg wheel, PyAV and CTranslate2 bring
# their own libraries, so the slim base is all the system it needs. Installed into a
# virtual environment in a build stage; only that environment is copied into the final
# image, which runs as an unprivileged user.
#
# Build args:
#   CUDA_LIBS=1   also install cuBLAS and cuDNN for CUDA 12 from PyPI, for the GPU
#                 transcriber (CTranslate2 loads them at run time; the NVIDIA container
#                 toolkit provides the driver). Adds about 1.5 GB, hence not by default.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/livewitness
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY storage storage
COPY recorder recorder
COPY transcriber transcriber
COPY compliance compliance
COPY indexer indexer
COPY evidence evidence
COPY api api
COPY cli cli
ARG CUDA_LIBS=0
RUN /opt/livewitness/bin/pip install '.[postgres,elasticsearch,streamlink]' \
    && if [ "$CUDA_LIBS" = 1 ]; then \
        /opt/livewitness/bin/pip install 'nvidia-cublas-cu12' 'nvidia-cudnn-cu12==9.*'; \
    fi

FROM python:${PYTHON_VERSION}-slim
ARG PYTHON_VERSION
COPY --from=build /opt/livewitness /opt/livewitness
# /data is the data home (work files, spool, models, keys); made here so that volumes
# mounted on it and on /data/keys start out owned by, and private to, the service user.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home livewitness \
    && mkdir -p /data/keys \
    && chown -R livewitness:livewitness /data \
    && chmod -R 700 /data
ENV PATH=/opt/livewitness/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIVEWITNESS_HOME=/data \
    LD_LIBRARY_PATH=/opt/livewitness/lib/python${PYTHON_VERSION}/site-packages/nvidia/cublas/lib:/opt/livewitness/lib/python${PYTHON_VERSION}/site-packages/nvidia/cudnn/lib
USER livewitness
WORKDIR /data
VOLUME /data
EXPOSE 8080 9101 9102 9103
ENTRYPOINT ["livewitness"]
CMD ["--help"]
