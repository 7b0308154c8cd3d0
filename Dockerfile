# syntax=docker/dockerfile:1
# Multi-stage: build with the full toolchain, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin poolguard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/poolguard --create-home poolguard
COPY --from=build /src/target/release/poolguard /usr/local/bin/poolguard
# Port 53 without root: the binary alone gets the capability to bind low ports.
RUN setcap cap_net_bind_service=+ep /usr/local/bin/poolguard
WORKDIR /etc/poolguard
COPY config.toml ./config.toml
COPY blocklists ./blocklists
# The image's config listens on all interfaces on 53 and keeps its database in a volume.
RUN sed -i 's|^listen = \["127.0.0.1:5353"\]|listen = ["0.0.0.0:53", "[::]:53"]|; s|^listen = "127.0.0.1:8080"|listen = "0.0.0.0:8080"|; s|^path = "data/poolguard.db"|path = "/var/lib/poolguard/poolguard.db"|' config.toml \
 && chown -R poolguard:poolguard /etc/poolguard/blocklists
USER poolguard
VOLUME ["/var/lib/poolguard"]
EXPOSE 53/udp 53/tcp 8080/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/poolguard"]
CMD ["--config", "/etc/poolguard/config.toml"]
