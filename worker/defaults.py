"""Every default and limit of the worker in one place (the server's are in server/defaults.py)."""

CLAIM_WAIT_SECONDS = 25.0  # long poll; the API allows up to 30
UNHELD_POLL_PAUSE_SECONDS = 5.0  # after a long poll the server answered empty at once
BATCH_WINDOW_SECONDS = 0.25  # after a partial claim, how long to let a burst of submissions land
CLAIM_ANSWER_GRACE_SECONDS = 0.5  # after a stop, how long a long poll may still answer
# After a stop, how long an unreachable server is retried before the worker exits anyway, its
# undelivered results left in the spool for the next start.
STOP_RETRY_SECONDS = 30.0
MAX_BATCH = 1
HTTP_TIMEOUT_SECONDS = 30.0  # per call, on top of the long poll's wait
UPLOAD_TIMEOUT_SECONDS = 120.0

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0

HEARTBEAT_MIN_GAP_SECONDS = 0.5  # progress is reported at most this often
HEARTBEAT_SHARE_OF_LEASE = 0.25  # without new progress, beat every quarter lease
HEARTBEAT_MAX_SECONDS = 30.0

TOKEN_PROGRESS_SHARE = 0.9  # of a job's progress bar; decoding the images is the rest
PROMPT_LOG_CHARS = 40
ERROR_MAX_CHARS = 2000  # of a failure's message: the most the server keeps (docs/api.md)
ORPHAN_KEEP_SECONDS = 24 * 3600  # results whose lease was lost, kept in case the job comes back

# Live previews (shared/API-1.1.md, issue 17): `--previews off|auto|N`.
PREVIEWS = "auto"  # of `dalleq worker`; a WorkerOptions made in code has them off
PREVIEW_SHARE_OF_JOB = 0.10  # auto: previews take at most this share of a batch's sampling time
PREVIEW_TILE_PIXELS = 96  # side of each tile in a preview: a 3x3 grid is 288 px square
PREVIEW_MAX_BYTES = 60_000  # of one preview (the API takes up to 1 MB; a phone wants it small)
PREVIEW_WEBP_QUALITIES = (70, 50, 30, 15)  # tried in turn until the preview fits
PREVIEW_TIMEOUT_SECONDS = 5.0  # a preview waits on the server at most this long, then is skipped
PREVIEW_CODES_PER_TILE = 256  # a tile's image codes (16x16), the steps of a job

# Sharing the GPU (issue 19): idle unload, quiet hours, stepping aside, the state on the page.
IDLE_UNLOAD_GPU_MINUTES = 10.0  # `--idle-unload` on a GPU; on a CPU it is off (0) by default
HOLD_CHECK_SECONDS = 30.0  # while paused, how often the worker looks whether it may go on
STATUS_REPEAT_SECONDS = 30.0  # an unchanged state is sent again this often (the page wants 60)
STATUS_TIMEOUT_SECONDS = 5.0  # a state report is not worth holding the loop up
STATUS_REASON_MAX_CHARS = 200  # the API's limit on a pause's reason
