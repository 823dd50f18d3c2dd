# batchcopy's container image: the wheel built from this checkout, installed into a slim
# Python and run as a non-root user, with no compiler, no pip cache and no source tree left.
# batchcopy is the entrypoint, so the arguments are batchcopy's:
#
#     docker build -t batchcopy:0.1.0 .
#     docker run --rm batchcopy:0.1.0 --help
#     docker run --rm -v "$PWD:/work" -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#         -e AWS_SESSION_TOKEN batchcopy:0.1.0 run manifest.csv --report-dir report
#
# The Kubernetes examples (examples/kubernetes/) run this image; the AWS Batch one
# (examples/aws-batch/) runs its aws-batch target (docker build --target aws-batch), below.
# tests/test_dockerfile.py checks this file's structure.

ARG PYTHON_IMAGE=python:3.11-slim

# Build: the wheel `pip wheel --no-deps .` makes in a checkout. Only what that needs is
# sent to the builder (.dockerignore lets nothing else in).
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY batchcopy/ batchcopy/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# Run: that wheel and its dependencies, binary wheels only (this image has no compiler to
# build one, so a dependency without a wheel for the platform fails here, not at run time).
FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /dist/batchcopy-*-py3-none-any.whl /tmp/
RUN pip install --no-cache-dir --only-binary=:all: /tmp/batchcopy-*-py3-none-any.whl \
    && rm /tmp/batchcopy-*-py3-none-any.whl \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin batchcopy \
    && install -d -o 10001 -g 10001 /work
# A numeric user, so Kubernetes' runAsNonRoot can verify it. Its home holds the default
# rate state (~/.cache/batchcopy/rates.json); the examples, whose root file system is
# read-only, point BATCHCOPY_RATE_STATE at their volume instead.
USER 10001:10001
WORKDIR /work
# Exec form: batchcopy is PID 1, so a stop's SIGTERM reaches it; it writes its report and
# journal and exits 143.
ENTRYPOINT ["batchcopy"]
CMD ["--help"]

# AWS Batch: a job definition can neither replace an image's entrypoint nor give its
# command to a shell, so an array job's child could not name its own report folder from
# AWS_BATCH_JOB_ARRAY_INDEX. This target takes its command as one shell script instead
# (examples/aws-batch/job-definition.json's, which ends in `exec batchcopy ...`).
FROM runtime AS aws-batch
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["exec batchcopy --help"]

# The default target: the image above, batchcopy as its entrypoint.
FROM runtime
