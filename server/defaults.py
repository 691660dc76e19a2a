"""Every default and limit of the server in one place (shared/API.md, "Configuration" and bodies)."""

DATABASE_URL = "sqlite:///./queue.db"
DATA_DIR = "./data"
LEASE_SECONDS = 120
MAX_ATTEMPTS = 3
MAX_UPLOAD_MB = 64
HOST = "127.0.0.1"
PORT = 8000
THREADS = 32  # long-polling workers each hold one WSGI thread for up to CLAIM_MAX_WAIT_SECONDS
DEFAULT_MODEL = "mini"

# Job fields (shared/API.md, POST /api/v1/jobs).
PROMPT_MAX_CHARS = 500
SEED_MAX = 2**31 - 1
GRID_MIN, GRID_MAX, GRID_DEFAULT = 1, 4, 3
TEMPERATURE_DEFAULT, TEMPERATURE_MAX = 1.0, 5.0
TOP_K_DEFAULT, TOP_K_MAX = 50, 16384
TOP_P_DEFAULT = None
CONDITION_SCALE_DEFAULT, CONDITION_SCALE_MIN, CONDITION_SCALE_MAX = 10.0, 1.0, 50.0
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

# Listing and claiming.
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 100
CLAIM_MAX_WAIT_SECONDS = 30
CLAIM_MAX_JOBS = 64
LONG_POLL_FREE_THREADS_MIN = 4  # WSGI threads long polls never take (server/long_polls.py)
CLAIM_RECHECK_SECONDS = 1.0  # long polls re-check the table this often (other processes submit too)
EXPIRE_EVERY_SECONDS = 1.0  # lease expiry runs at most this often per process
# A model no worker has asked for within this long gets a warning on its jobs (server/sightings.py).
WORKER_SEEN_MINUTES = 10

# Results: DALL-E Mini's VQGAN decodes 16x16 codes at f16 into 256x256 tiles.
TILE_PIXELS = 256
THUMB_PIXELS = 384
THUMB_QUALITY = 70
META_MAX_BYTES = 16 * 1024
META_MAX_DEPTH = 8  # a worker's meta is flat (timings, device, model); 8 leaves room to grow
ERROR_MAX_CHARS = 2000
WORKER_NAME_MAX_CHARS = 100
WORKER_REASON_MAX_CHARS = 200  # why a worker is paused, as the queue page shows it (issue 19)
# A worker not heard from within WORKER_SEEN_MINUTES stays on the queue page as "not seen since"
# for this long, then drops off (a renamed worker would otherwise linger for ever).
WORKER_GONE_SHOWN_HOURS = 24

# Result folders no job points to (a server killed mid-upload leaves one): swept at start and
# then this often, once older than ORPHAN_MIN_AGE_SECONDS. A folder is made only after its upload
# was read in full and is pointed at by the same request a few file writes and one commit later;
# the worker gives an upload 150 s and waitress drops a connection idle for 60 s, so an hour is
# far beyond the longest a live folder can go unreferenced.
ORPHAN_MIN_AGE_SECONDS = 3600
ORPHAN_SWEEP_EVERY_SECONDS = 3600

# Idempotency keys (shared/API-1.1.md): a retried submit within this window returns the first job.
IDEMPOTENCY_KEY_MAX_CHARS = 200
IDEMPOTENCY_KEY_HOURS = 24

# Live previews (shared/API-1.1.md): a small WebP or JPEG of the grid forming, one per running job.
PREVIEW_MAX_BYTES = 2**20
PREVIEW_STEPS_MAX = 256  # image tokens per tile: DALL-E Mini draws 16x16 VQGAN codes
PREVIEW_MAX_SIDE_PIXELS = TILE_PIXELS * GRID_MAX  # never larger than the largest grid

# Web Push (issue 18): who may be told when jobs end, and how a push is sent (server/push_sender.py).
PUSH_SUBSCRIPTIONS_MAX = 50  # one owner's phones and laptops; a runaway script stops here
PUSH_ENDPOINT_MAX_CHARS = 2048
# VAPID "sub" when neither DALLEQ_PUSH_CONTACT nor an https public URL is set. Not @localhost:
# Apple's push service refuses a subject whose host does not resolve (403 BadJwtToken).
PUSH_CONTACT = "mailto:dalle-queue@example.com"
PUSH_TTL_SECONDS = 24 * 3600  # a phone offline longer than a day does not need the old news
PUSH_TIMEOUT_SECONDS = 10.0  # one POST to the push service
PUSH_TRIES = 3
PUSH_RETRY_SECONDS = 1.0  # before the second try; doubled before the third
PUSH_QUEUE_MAX = 1000  # messages waiting for the sender; past this new ones are dropped and logged
