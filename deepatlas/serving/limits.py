"""Default request limits of the model server (kept light: the CLI's --help reads them)."""

MAX_BATCH = 1024  # instances per request
MAX_BODY_BYTES = 16 * 1024 * 1024  # bytes per request body
MAX_ELEMENTS = 262_144  # numbers per request (instances x sample size, sequence length included)
MAX_DYNAMIC_LENGTH = 100_000  # elements along a dynamic axis (e.g. sequence length)
READ_TIMEOUT_S = 10.0  # seconds to receive a request's headers, and then its whole body
MAX_HEADER_BYTES = 16 * 1024  # the request line and headers together (h11's incomplete-event limit)
MAX_INFERENCES = 2  # inferences running at once, in worker threads; more requests wait their turn
F32_MAX = 3.4e38  # input values must fit float32
