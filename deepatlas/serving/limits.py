"""Default request limits of the model server (kept light: the CLI's --help reads them)."""

MAX_BATCH = 1024  # instances per request
MAX_BODY_BYTES = 16 * 1024 * 1024  # bytes per request body
MAX_DYNAMIC_LENGTH = 100_000  # elements along a dynamic axis (e.g. sequence length)
F32_MAX = 3.4e38  # input values must fit float32
