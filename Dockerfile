# syntax=docker/dockerfile:1
# runbookd's image: built in a Rust stage, run from a slim Debian as a
# non-root user, with a read-only root filesystem in the chart.
#
#   docker build -t runbookd:0.1.0 .
#
# A cold release build takes about 15 minutes on 2 cores; the dependencies
# are built in their own layer, so a change to runbookd's code alone
# rebuilds only the last step (a few minutes).

FROM rust:1.95-bookworm AS build
WORKDIR /src

# 1. Dependencies only: the manifest with empty targets, so this layer is
#    cached until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in core checklist maintenance report; do echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked --bin runbookd \
 && rm -rf src benches target/release/runbookd* target/release/deps/runbookd-* target/release/deps/librunbookd-* target/release/.fingerprint/runbookd-*

# 2. runbookd itself (migrations, SQL and the charts' font are compiled in).
COPY src src
COPY migrations migrations
COPY assets assets
COPY benches benches
RUN cargo build --release --locked --bin runbookd \
 && strip target/release/runbookd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 runbookd \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin runbookd
COPY --from=build /src/target/release/runbookd /usr/local/bin/runbookd
# jobs.yaml comes from a ConfigMap mounted here; the outbox and any
# scratch space are volumes (the root filesystem is read-only).
ENV RUNBOOKD_CONFIG=/etc/runbookd/jobs.yaml \
    RUNBOOKD_OUTBOX=/var/lib/runbookd/outbox
USER 65532:65532
EXPOSE 8790
ENTRYPOINT ["/usr/local/bin/runbookd"]
CMD ["serve"]
