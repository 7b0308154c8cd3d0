# syntax=docker/dockerfile:1
# Multi-stage: build with the full toolchain, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# SQLite's compile-time mmap limit for the store's readers (see .cargo/config.toml).
COPY .cargo ./.cargo
COPY src ./src
COPY crates ./crates
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
COPY contrib/docker/config.sed /tmp/config.sed
# The image's config listens on all interfaces on 53 and keeps what it writes (store, API feeds,
# versions) in the volume. The shipped lists stay in the image, so a new image brings new ones;
# API edits to a shipped list last until the container is replaced (keep campus lists as API feeds).
RUN sed -i -f /tmp/config.sed config.toml \
 && rm /tmp/config.sed \
 && chown -R poolguard:poolguard /etc/poolguard/blocklists
USER poolguard
VOLUME ["/var/lib/poolguard"]
EXPOSE 53/udp 53/tcp 8080/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/poolguard"]
CMD ["--config", "/etc/poolguard/config.toml"]
