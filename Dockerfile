# The ENSO forecasting system: the `enso` command, the flows, and (default command) a Prefect
# process worker for the `cpu` pool.
#   docker build -t enso-forecast:cpu .
#   docker build --build-arg TORCH_VARIANT=cuda -t enso-forecast:gpu .   # for the `gpu` pool
# TORCH_VARIANT `cpu`: torch's CPU build from the PyTorch index. `cuda`: PyPI's Linux wheel of the same
# version, which is the CUDA build (2.13.0: CUDA 13.0, kernels for sm_75..sm_120; its CUDA runtime comes
# as PyPI wheels, so the host needs only the NVIDIA driver >= 580 and the container toolkit).
# `make check-gpu-torch` downloads that wheel (without installing it) and checks what it needs.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_CUDA_INDEX=https://pypi.org/simple

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 \
    PREFECT_HOME=/app/var/prefect \
    ENSO_DATA_DIR=/app/var

RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 enso \
    && useradd --system --uid 10001 --gid enso --home-dir /app --no-create-home --shell /usr/sbin/nologin enso

WORKDIR /app

# torch first: the CPU image from the PyTorch index (PyPI's Linux wheel is the multi-GB CUDA build, which
# the GPU image wants).
RUN case "${TORCH_VARIANT}" in \
      cpu)  pip install --index-url "${TORCH_CPU_INDEX}" "torch==${TORCH_VERSION}+cpu" ;; \
      cuda) pip install --index-url "${TORCH_CUDA_INDEX}" "torch==${TORCH_VERSION}" ;; \
      *)    echo "TORCH_VARIANT must be cpu or cuda, not ${TORCH_VARIANT}" >&2; exit 1 ;; \
    esac

# The dependencies at the tested versions, in a layer of their own (rebuilt only when they change).
COPY pyproject.toml constraints.txt ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.run([sys.executable, '-m', 'pip', 'install', '-c', 'constraints.txt', *deps], check=True)"

# The project, editable: the deployments' flow code is /app (deployments/deploy.py REPO_ROOT).
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p /app/var/prefect \
    && chown -R enso:enso /app/var

USER enso

CMD ["prefect", "worker", "start", "--pool", "cpu", "--type", "process", "--install-policy", "never"]
