# The worker image: Debian's ffmpeg and Chromaprint (installed by the same script the README's commands use)
# and the project. One image serves every queue; the compose file picks the queue per service.
FROM python:3.11-slim-bookworm

WORKDIR /app
COPY docker/install-system-deps.sh docker/install-system-deps.sh
RUN bash docker/install-system-deps.sh && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY pipelines pipelines
COPY workers workers
RUN pip install --no-cache-dir .

RUN useradd --system --create-home mediaworker
USER mediaworker
ENV MEDIAWORKER_HOME=/home/mediaworker/data
ENTRYPOINT ["mediaworker"]
CMD ["--help"]
