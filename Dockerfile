# The payq image: the worker, Flower and the sandbox all run from it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them.
# The same constraints file as `make test` and CI: what passed there is what runs here.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir config payapi sandbox tasks workers \
    && pip install -c constraints.txt . \
    && pip uninstall -y payq

COPY config ./config
COPY payapi ./payapi
COPY sandbox ./sandbox
COPY tasks ./tasks
COPY workers ./workers
RUN pip install -c constraints.txt . \
    && rm -rf /src

# Never run jobs as root.
RUN useradd --create-home --uid 10001 payq
USER payq
WORKDIR /home/payq

# Pool and concurrency come from PAYQ_WORKER_POOL and PAYQ_WORKER_CONCURRENCY (threads x 32 by default).
CMD ["celery", "-A", "workers.app", "worker", "--loglevel", "INFO"]
