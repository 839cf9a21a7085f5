# acrpool-controller image: built on Debian 12 exactly as CI builds it, run
# on Debian 12 slim with only the shared libraries the binary loads.
#
#   docker build -t acrpool-controller:0.1.0 .
#   az acr build -r myregistry -t acrpool-controller:0.1.0 .   # or let ACR build it
#
# tests/e2e/test_delivery.py keeps this file honest: the runtime packages
# must cover every library `ldd` reports for the built binary, and the build
# stage must run scripts/deps.sh and the CMake configure/build of the Makefile.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The same build dependencies as CI and every developer machine.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh
COPY CMakeLists.txt ./
COPY controller/ controller/
COPY reconcilers/ reconcilers/
# The Makefile's build (without the sanitizers and the unit tests, which CI
# runs separately), installed stripped into /out.
RUN cmake -S . -B build -G Ninja -DACRPOOL_SANITIZE=OFF -DACRPOOL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build \
 && cmake --install build --prefix /out --strip \
 && /out/bin/acrpool-controller --version

FROM debian:bookworm-slim
# libcurl4 (and through it libssl3, libnghttp2, ...), cJSON, libyaml,
# libwebsockets, OpenSSL, zlib and libcap, which the binary links directly; CA
# certificates for Azure and the API server; time zones for countSchedule's
# timeZone.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcurl4 libcjson1 libyaml-0-2 libwebsockets17 libssl3 zlib1g libcap2 \
      ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/acrpool-controller /usr/local/bin/acrpool-controller
# The distroless "nonroot" user; the Deployment runs as it too.
USER 65532:65532
EXPOSE 8443 8081
ENTRYPOINT ["/usr/local/bin/acrpool-controller"]
