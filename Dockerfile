# Production image for the web server and the conversion workers.
FROM node:20-bookworm-slim AS node
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MODELPORT_VAR_DIR=/var/lib/modelport
# bubblewrap is the converter sandbox (conversions/sandbox.py); libseccomp2 compiles its filter;
# chromium runs each new version on TF.js' wasm and webgl backends (converter/browsers.py).
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap libseccomp2 chromium \
    && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --no-deps -r requirements.lock
COPY --from=node /app/node_modules node_modules
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home /var/lib/modelport modelport \
    && mkdir -p /var/lib/modelport && chown -R modelport /var/lib/modelport
# Never root: the sandbox then maps its uid 65534 to this unprivileged user.
USER 10001
EXPOSE 8000
CMD ["deploy/web"]
