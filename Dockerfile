# One image for all six spanline services: `spanline run <service>` picks one.
# Stage 1 builds the wheel, with the compiled span row builder (needs a C compiler);
# stage 2 is a slim runtime with no compiler, running as a non-root user. No HEALTHCHECK:
# Kubernetes probes /healthz and /readyz on each service's metrics port.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[s3]' \
    && python -c "import glob, sys, zipfile; w = glob.glob('/wheels/spanline-*.whl')[0]; \
names = zipfile.ZipFile(w).namelist(); \
sys.exit(0 if any(n.startswith('spanline/spans/wire_spans') and n.endswith('.so') for n in names) else 'compiled span builder missing from the wheel')"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SPANLINE_DATA_DIR=/tmp/spanline \
    SPANLINE_HTTP_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'spanline[s3]' && rm -rf /wheels \
    && groupadd --system --gid 10001 spanline \
    && useradd --system --uid 10001 --gid spanline --home-dir /nonexistent --shell /usr/sbin/nologin spanline
WORKDIR /tmp
USER 10001:10001
EXPOSE 4317 4318 9464 9465 9466 9467 9468 9469
ENTRYPOINT ["spanline"]
CMD ["--help"]
