# One-line recipes for people who use `just`; each is the same as the cargo xtask command.

# Run the demo appliance (data under ./var/demo).
demo *ARGS:
    cargo xtask demo -- {{ARGS}}

# Install test peers, then fmt check, clippy and every test.
test:
    cargo xtask test

# Formatting and lints only.
check:
    cargo xtask check

# Measure against the anchors and update docs/benchmarks.md.
bench:
    cargo xtask bench
