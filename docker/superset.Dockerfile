# Superset for docker-compose.yml, provisioned exactly as on a developer's machine: superset/provision installs
# superset/requirements.txt into superset/.venv (its pins conflict with pyspark's); at start it initialises the
# metadata DB, imports the dashboard bundle (superset/bundle/) pointed at the compose MongoDB and runs gunicorn.
# Its libraries: superset/requirements.txt alone (the one list, pinned there). Its files: the COPY lines below, which
# tests/images/ replays without Docker before provisioning and serving the dashboard from them (a package missing
# here fails that test).
FROM python:3.11.11-slim-bookworm

RUN useradd --system --uid 1000 --home-dir /var/lib/superset --create-home superset
WORKDIR /opt/app
# provision reads the pipeline configuration (conf, which reads the event contract's times: contract) and runs
# Superset as a stack.process.Service (stack).
COPY conf ./conf
COPY contract ./contract
COPY stack ./stack
# the install layer first: it changes only with superset/requirements.txt (or the provision command)
COPY superset/provision superset/requirements.txt ./superset/
RUN python superset/provision install --no-browser
COPY superset ./superset
COPY docker/superset-entrypoint.sh /usr/local/bin/superset-entrypoint

ENV PYTHONUNBUFFERED=1
USER superset
CMD ["superset-entrypoint"]
