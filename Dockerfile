# syntax=docker/dockerfile:1
# recstream as a container: build on Debian 12 with the same packages as
# scripts/install-deps.sh, run on debian:12-slim with only the shared
# libraries the binary links, as an unprivileged user.
#
#   docker build -t recstream .
#   docker run --rm recstream run --help
#
# docker-compose.yml builds this image for the processor and the one-shot
# model trainer of the demo stack.

# ---- build stage: compilers and -dev packages stay here
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libopenblas-dev librocksdb-dev libmicrohttpd-dev \
      libjansson-dev libxxhash-dev libcurl4-openssl-dev libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" --target recstream \
 && strip --strip-debug /build/recstream

# ---- runtime stage: shared libraries only, no compiler, no shell tools beyond curl
FROM debian:12-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libopenblas0-pthread librocksdb7.8 libmicrohttpd12 \
      libjansson4 libxxhash0 libcurl4 libjemalloc2 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid/gid, so that volume permissions are predictable.
RUN groupadd --system --gid 10001 recstream \
 && useradd --system --uid 10001 --gid recstream --home-dir /var/lib/recstream \
      --shell /usr/sbin/nologin recstream \
 && mkdir -p /var/lib/recstream /models /etc/recstream \
 && chown recstream:recstream /var/lib/recstream /models
COPY --from=build /build/recstream /usr/local/bin/recstream
USER recstream:recstream
WORKDIR /var/lib/recstream
# State (RocksDB) and model files outlive the container.
VOLUME ["/var/lib/recstream", "/models"]
# /metrics, /healthz, /readyz when run with --metrics-port 9102 --metrics-bind 0.0.0.0
EXPOSE 9102
ENTRYPOINT ["recstream"]
CMD ["--help"]
