FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY recorder recorder
COPY transcriber transcriber
COPY indexer indexer
COPY api api
COPY storage storage
RUN pip install --no-cache-dir '.[postgres,streamlink]'
ENV LIVEWITNESS_HOME=/data
VOLUME /data
ENTRYPOINT ["livewitness"]
