# The backend as an image: the wheel built in one stage, installed in a slim runtime as a non-root
# user; `marketplace-saas` is the entrypoint and `serve` the default command (a Job passes
# `db upgrade` instead). See docs/deploy.md.
#   docker build -t marketplace-saas .
#   docker run -p 8080:8080 --env-file production.env marketplace-saas
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LOG_FORMAT=json
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["marketplace-saas"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
