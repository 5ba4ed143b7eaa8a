# One image for every Python service of algocomp: api, worker, aggregator, beat and Flower. docker-compose.yml
# picks the command per service; the default serves the API.
#
#   docker build -t algocomp .
#   docker run --rm -p 8000:8000 -e ALGOCOMP_DATABASE_URL=... algocomp
#
# Settings come from ALGOCOMP_* environment variables (algocomp.platform.settings); nothing is baked into the image.
#
# Build arguments:
#   PYTHON_IMAGE   the base image (default python:3.11-slim); docker-compose.yml passes its PYTHON_IMAGE, which
#                  tests/compose points at a stand-in built from Debian where registry images cannot be pulled.
# Extra CA certificates: every *.crt in docker/ca-certificates/ (empty in the repository) is trusted in the image,
# by pip at build time too, for networks whose HTTPS passes an intercepting proxy. tests/compose copies the
# machine's certificates there before it builds.

ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # numba and matplotlib write caches; the non-root user may only write below /tmp and its home
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

COPY docker/ca-certificates/ /usr/local/share/ca-certificates/algocomp/
RUN if ls /usr/local/share/ca-certificates/algocomp/*.crt >/dev/null 2>&1 && command -v update-ca-certificates >/dev/null; then \
        update-ca-certificates >/dev/null; \
    fi

# The dependencies first, from pyproject.toml and constraints.txt alone: this layer is rebuilt only when they
# change, not on every edit of the code. The image runs the services, so it gets the core dependencies and the
# `server` extra (not the client, test or lint extras), at the versions pinned in constraints.txt (`make
# constraints`). Every dependency ships wheels for Linux (x86-64 and arm64), so no compiler is needed.
COPY pyproject.toml constraints.txt ./
# pip trusts the system's CA bundle (with the certificates above) rather than its own copy of certifi's.
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps = project['dependencies'] + project['optional-dependencies']['server']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
    && if [ -s /etc/ssl/certs/ca-certificates.crt ]; then export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The library and the services, installed as a regular (not editable) package. services/ carries the web
# dashboard's bundle (services/api/algocomp_api/dashboard/static/, package data of algocomp_api) when it was built
# before the image: `make up` and `make test-compose` run `make dashboard` first (Node.js is needed on the machine
# that builds, not in the image). Without it the API answers / with 404 dashboard_not_built saying so.
COPY README.md ./
COPY shared ./shared
COPY services ./services
RUN if [ -s /etc/ssl/certs/ca-certificates.crt ]; then export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi \
    && pip install --no-deps . && rm -rf build shared/*.egg-info

# The migrations the api runs before it serves (alembic.ini's script_location is relative to /app).
COPY alembic.ini ./
COPY migrations ./migrations

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin algocomp
USER algocomp

# The engine compiled once here, as the user the services run as, so that a new worker container (`docker compose
# up --scale worker=N`) starts with numba's cache and the generated loops (~/.cache/algocomp/kernels) warm instead
# of compiling them on its first run, about 10 s of CPU each: short runs of the Calvano baseline (the Q-learning
# loop written out for two firms) and of Hansen et al.'s UCB (the general loop). numba checks the CPU a cached
# entry was compiled for, so an image built on one machine and run on another compiles again, correctly.
RUN for preset in calvano-2020-baseline hansen-2021-ucb; do \
        algocomp simulate "$preset" --sessions 1 --workers 1 --set horizon.max_periods=5000 --out /tmp/warm-up >/dev/null \
        && rm -rf /tmp/warm-up || exit 1; \
    done

EXPOSE 8000 5555
CMD ["python", "-m", "algocomp_api.serve", "--host", "0.0.0.0", "--port", "8000", "--processes", "2"]
