# syntax=docker/dockerfile:1
# Switchboard: one image for every role; the command chooses it (the ENTRYPOINT is the
# `switchboard` CLI):
#   docker run IMAGE serve        the server (HTTP :8000, media streams :8001), the default
#   docker run IMAGE dialer       an extra campaign dialer
#   docker run IMAGE engine       the local Realtime engine (offline; models are inside)
#   docker run IMAGE simulator    the carrier simulator (offline)
#   docker run IMAGE migrate | doctor | call | campaign … | keys …
# Installs exactly what requirements/runtime.lock says (hash-checked, wheels only), then
# the project without dependencies. Build: docker build -t switchboard .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a venv with the locked dependencies and the project ----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/switchboard
COPY requirements/build.lock requirements/runtime.lock requirements/
RUN /opt/switchboard/bin/pip install --require-hashes --only-binary=:all: -r requirements/build.lock \
    && /opt/switchboard/bin/pip install --require-hashes --only-binary=:all: -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY app app
COPY switchboard_engine switchboard_engine
COPY switchboard_sim switchboard_sim
COPY flows flows
COPY tools tools
COPY migrations migrations
RUN /opt/switchboard/bin/pip install --no-deps --no-build-isolation . \
    && /opt/switchboard/bin/pip check \
    && /opt/switchboard/bin/switchboard --help > /dev/null

# --- runtime: slim Debian, the TTS voices, the venv, a non-root user ----------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Telephony voice agent: Twilio Media Streams <-> OpenAI Realtime" \
      org.opencontainers.image.licenses="Apache-2.0"
# espeak-ng and flite: the local engine's TTS. Debian stable's versions, updated with the
# base image (pinning them would break every point release).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng flite \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard
COPY --from=build /opt/switchboard /opt/switchboard
COPY deploy/docker/healthcheck.py /usr/local/bin/switchboard-healthcheck
COPY examples /app/examples
ENV PATH=/opt/switchboard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=8000 \
    SWITCHBOARD_MEDIA_PORT=8001 \
    SWITCHBOARD_LOG_JSON=true
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8001
# serve's liveness; other roles override it (compose.yaml, deploy/kubernetes/).
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/switchboard-healthcheck"]
# SIGTERM starts the ordered shutdown (stop dialing, stop accepting, drain, close): give it
# SWITCHBOARD_SHUTDOWN_DRAIN_S + 10 s (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchboard"]
CMD ["serve"]
