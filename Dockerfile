# Multi-stage release build. CI has no Docker engine: tests/docker_context.rs checks that
# every file the build compiles in is copied below (and that .dockerignore hides none of
# it); the image was built and run by hand (docs/deployment.md §5).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
# Compiled into the server: the OpenAPI document it serves, the Grafana dashboard.
COPY docs ./docs
# The postgres backend's schema migrations, compiled in.
COPY migrations ./migrations
RUN cargo build --release --locked --bin paygate

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/paygate paygate \
 && mkdir -p /var/lib/paygate/data && chown -R paygate /var/lib/paygate
WORKDIR /var/lib/paygate
COPY --from=build /src/target/release/paygate /usr/local/bin/paygate
COPY config.toml risk.toml ./
# Simulator test keys only (each channel keeps its TEST_ONLY keys in
# src/connectors/<kind>/fixtures/, where config.toml points); mount real keys and point
# the channel settings at them.
COPY --from=build /src/src/connectors ./src/connectors
USER paygate
ENV PAYGATE__SERVER__BIND=0.0.0.0:8080
EXPOSE 8080
VOLUME ["/var/lib/paygate/data"]
ENTRYPOINT ["paygate"]
CMD ["serve", "--config", "config.toml"]
