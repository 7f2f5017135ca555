# One image, four processes (web, scheduler, dispatcher, migrate): see README.md "Processes".
# The builder installs the runtime lock alone (hash-pinned, no development or test tools) into a
# virtual environment; the final stage holds that environment and the service's own files, owned by
# root, and runs as a user who cannot change them.
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock


FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000

# The user's home holds gunicorn's control socket (~/.gunicorn/, see gunicorn.conf.py).
RUN groupadd --system app \
    && useradd --system --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv/app
COPY app ./app
COPY config.py wsgi.py gunicorn.conf.py ./
COPY scripts/migrate_to_multitenant.py scripts/shard_collections.py ./scripts/
RUN python -m compileall -q app config.py wsgi.py gunicorn.conf.py scripts

USER app
EXPOSE 8000
# Started as the web service; docker-compose.yml runs the same image as the scheduler and the
# dispatchers (commands of their own, with init: true so that SIGTERM reaches them).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
