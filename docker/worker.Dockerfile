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
# librosa's numba kernels compiled into the user's cache now, once, rather than by every new container (~25 s).
RUN python -c "from pipelines.audio.kernels import load_kernels; load_kernels()"
ENTRYPOINT ["mediaworker"]
CMD ["--help"]
