# One image for every process of the console: web, worker, beat, and (on a sandbox stack)
# the local AWS. docker-compose.yml runs it; production runs the same image with
# OPSCONSOLE_SANDBOX=0 and real endpoints.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# curl: health checks, and the shell `bootstrap` functions the local AWS can run.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p opsconsole tenants deployments \
    && touch opsconsole/__init__.py tenants/__init__.py deployments/__init__.py \
    && pip install -e . \
    && rm -rf opsconsole tenants deployments
COPY . .
RUN pip install --no-deps -e . \
    && useradd --system --create-home --home-dir /home/app app \
    && mkdir -p /app/.sandbox && chown -R app /app/.sandbox
USER app

EXPOSE 8000 4566
CMD ["gunicorn", "opsconsole.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"]
