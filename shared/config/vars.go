package config

import (
	"fmt"
	"strings"
)

// Var documents one environment variable. Vars is the single source of truth: FromEnv takes
// every default from it (no other package keeps one), and a test checks that README.md's
// table is exactly Markdown().
type Var struct {
	Name    string
	Default string // "" means none: required (see Required) or optional and empty
	// Local replaces Default in the local harness (FromEnv with local=true) when non-empty.
	Local    string
	Required bool // required outside the local harness
	// Derived marks a variable that, when not set, is computed from others (Meaning says how;
	// Default, when non-empty, is the cap of that computation). The README shows "derived".
	Derived bool
	// ServerOnly marks a setting of the server mode (functions/web) alone, which the event
	// functions do not read.
	ServerOnly bool
	Meaning    string
}

// LocalTicketSecret is the fixed ticket secret of the local harness. It is fixed, not generated
// per process, because every function instance must accept the tickets any other issued.
const LocalTicketSecret = "carqueue-local-dev-ticket-secret"

// LocalAdminToken is the /stats token of the local harness.
const LocalAdminToken = "local-admin-token"

// Vars lists every variable FromEnv reads, in the order of the README table.
var Vars = []Var{
	{Name: "REDIS_ADDR", Local: "127.0.0.1:6379", Required: true, Meaning: "Redis `host:port` (port 6379 when left out). Several, comma-separated: the nodes of a Redis Cluster (any of them; the client finds the rest); with REDIS_MASTER_NAME: the sentinels (port 26379 when left out). A managed cluster behind one proxy address (TencentDB for Redis cluster edition) is ONE address. See docs/REDIS.md."},
	{Name: "REDIS_MASTER_NAME", Meaning: "Sentinel's name of the primary (empty: no Sentinel); set, REDIS_ADDR lists the sentinels."},
	{Name: "REDIS_USERNAME", Meaning: "Redis ACL user (empty: the default user)."},
	{Name: "REDIS_PASSWORD", Meaning: "Redis password (empty: none)."},
	{Name: "REDIS_SENTINEL_PASSWORD", Meaning: "Password of the sentinels themselves (empty: none); only with REDIS_MASTER_NAME."},
	{Name: "REDIS_DB", Default: "0", Meaning: "Redis database number; 0 on a Redis Cluster, which has no other."},
	{Name: "REDIS_TLS", Default: "0", Meaning: "`1`: connect to Redis (and the sentinels) over TLS, verifying the server's certificate against the system roots."},
	{Name: "QUEUES", Meaning: "The deployment's queues, a JSON array of `{\"Id\", \"ProjectId\", \"Capacity\", …}` (fields and an example under [Many queues](#many-queues-in-one-deployment)); empty: one queue from QUEUE_ID, CAR_PROJECT_ID, CAR_APPLICATION_ID, CAR_APPLICATION_VERSION_ID and CAPACITY, which must then not be set. A request picks its queue by `QueueId`, else `ProjectId` (+ `ApplicationId`), else the first queue."},
	{Name: "QUEUES_FILE", Meaning: "A file holding the QUEUES array instead (SCF caps the size of the environment); at most one of the two."},
	{Name: "QUEUE_ID", Default: "default", Meaning: "Queue id, 1–64 of `[A-Za-z0-9_.:-]`: one queue per id, used as the Redis hash tag."},
	{Name: "CAR_PROJECT_ID", Local: "cap-local", Required: true, Meaning: "CAR project whose slots this queue hands out; a request's `ProjectId`, when given, must equal it."},
	{Name: "CAR_APPLICATION_ID", Meaning: "CAR application id for ApplyConcurrent (empty: the project's); a request's `ApplicationId`, when given, must equal it."},
	{Name: "CAR_APPLICATION_VERSION_ID", Meaning: "CAR application version id for ApplyConcurrent (empty: the project's); a request's `ApplicationVersionId`, when given, must equal it."},
	{Name: "CAR_ENDPOINT", Default: "car.tencentcloudapi.com", Meaning: "CAR API `host[:port]`; point it at the emulator locally."},
	{Name: "CAR_SCHEME", Default: "https", Meaning: "`https`, or `http` for the emulator."},
	{Name: "CAR_REGION", Meaning: "Region sent with CAR calls (CAR does not need one)."},
	{Name: "CAR_RUN_MODE", Meaning: "CreateSession `RunMode` (e.g. `RunWithoutClient`; empty: CAR's default)."},
	{Name: "CAR_CALL_TIMEOUT", Meaning: "Time limit of one CAR call attempt (empty: per action, ApplyConcurrent 21s, CreateSession 6s, others 5s); always capped by the invocation deadline and by the CAR budget of an admission (CAR_LOCK_TTL×5/6), which a set value must not exceed."},
	{Name: "CAR_MAX_RETRIES", Default: "2", Meaning: "Retries of a transient or rate-limited CAR error within one call (0: none)."},
	{Name: "CAR_RATE_LIMIT", Meaning: "Client-side CAR call rates per second and instance, `Action=rate,...` (e.g. `ApplyConcurrent=100,CreateSession=100`); empty: the CAR client's defaults."},
	{Name: "CAR_LOCK_TTL", Default: "30s", Meaning: "Lifetime of the per-user lock that keeps CAR calls for one UserId single file. The CAR calls of one admission or release get 5/6 of it (the CAR budget), so the lock never lapses while a call is in flight."},
	{Name: "CAPACITY", Local: "2", Required: true, Meaning: "Slots this queue may hold at once (Admitting + Ready + Active + Releasing), an integer ≥ 0; 0: CAR's own `Total` for the project (DescribeConcurrentCount), re-read every CAR_TOTAL_REFRESH."},
	{Name: "CAR_TOTAL_REFRESH", Default: "30s", Meaning: "How often CAR's `Total` of a queue with Capacity 0 is read again (one instance reads it for all; DescribeConcurrentCount allows 20 calls/s for the whole account, so 30s suits up to 600 such queues); a changed Total takes effect within this plus one reaper tick."},
	{Name: "QUEUE_IDLE_TIMEOUT", Default: "90s", Meaning: "A queued user who has not polled for this long is dropped; never sooner, and in a large queue up to min(max(this/3, 1s), 30s) later, plus the reaper's sweep (N/500 reap calls, at most REAPER_MAX_BATCHES per reaper run) and tick (the reaper sweeps last-seen rather than keeping it sorted: shared/queue/lastseen.go)."},
	{Name: "HEARTBEAT_TIMEOUT", Default: "60s", Meaning: "An admitted user who has not heartbeated for this long has its session destroyed; also the `/reconnect` window."},
	{Name: "READY_TIMEOUT", Default: "60s", Meaning: "A Ready user who sends no first heartbeat within this long has its session destroyed; at least 2 × HEARTBEAT_INTERVAL."},
	{Name: "HEARTBEAT_INTERVAL", Derived: true, Meaning: "`NextHeartbeatMs` told to clients. Not set: min(HEARTBEAT_TIMEOUT/4, READY_TIMEOUT/2). At most HEARTBEAT_TIMEOUT/2, so one lost heartbeat does not end a session."},
	{Name: "POLL_MIN_INTERVAL", Default: "1s", Derived: true, Meaning: "`NextPollMs` at the head of the line and while Admitting (before ±20% jitter). Not set: min(1s, POLL_MAX_INTERVAL). At most POLL_MAX_INTERVAL and QUEUE_IDLE_TIMEOUT/2.4."},
	{Name: "POLL_MAX_INTERVAL", Default: "30s", Derived: true, Meaning: "`NextPollMs` cap far back in the line (before ±20% jitter). Not set: min(30s, QUEUE_IDLE_TIMEOUT/2.4), so setting QUEUE_IDLE_TIMEOUT alone always works. Set: 2.4 × POLL_MAX_INTERVAL must not exceed QUEUE_IDLE_TIMEOUT, so one lost poll never drops a user."},
	{Name: "CLAIM_LEASE", Default: "30s", Meaning: "How long one admission may take before the user returns to the front of the line; at least CAR_LOCK_TTL."},
	{Name: "GONE_RETENTION", Default: "10m", Meaning: "How long a departed user is remembered (its reason, for logs and stats)."},
	{Name: "RATE_WINDOW", Default: "5m", Meaning: "Window over which AdmissionsPerMinute, and so `EtaSeconds`, is measured."},
	{Name: "STOP_RELEASE_WAIT", Default: "2s", Meaning: "How long `/stop` waits for CAR to confirm a holder's DestroySession before it answers `Stopped` and leaves the release to the reaper (the user has left either way). At most the CAR budget, CAR_LOCK_TTL×5/6."},
	{Name: "RELEASE_RETRY_MIN", Default: "1s", Meaning: "Wait before the reaper retries a user's DestroySession that failed; doubles with each further failure of that user."},
	{Name: "RELEASE_RETRY_MAX", Default: "1m", Meaning: "Longest wait between DestroySession attempts for one user; at least RELEASE_RETRY_MIN."},
	{Name: "REAPER_BATCH", Default: "25", Meaning: "Stale users the reaper handles per batch (each batch holds Redis for one script). At 1M queued users a batch of 25 holds Redis under 2 ms even when a crowd leaves at once (its departures scattered over the line: 0.48 ms mean, 1.75 ms at most; 50 reached 2.3 ms, BENCHMARKS.md)."},
	{Name: "REAPER_MAX_BATCHES", Default: "400", Meaning: "Reap batches per round of a reaper run, 1–10000 (400 × 25 = 10,000 stale users), so a huge backlog cannot crowd out releases and admissions; the next round goes on."},
	{Name: "REAPER_LEASE", Default: "6s", Meaning: "Redis lease that keeps overlapping timer runs of the reaper from working at once. A run extends it every third of it while it works and stops at once when it cannot, so a run that died (crash, `kill -9`, Redis restart) holds the next one up for this long at most. At least 3s, so a renewal survives a slow Redis round trip."},
	{Name: "REAPER_OUTAGE_GRACE", Default: "20s", Meaning: "Longest gap between two reaper marks (a run taking its lease, or renewing it every REAPER_LEASE/3) that is still normal. A longer gap means the system could not work (Redis down, read-only or loading, the functions throttled): reaping is then held until every user had one full timeout (the longest of QUEUE_IDLE_TIMEOUT, HEARTBEAT_TIMEOUT, READY_TIMEOUT) to show up again, so nobody is dropped for time the system was down; /stats shows `ReapHeldSeconds`. Admissions and releases go on."},
	{Name: "REAPER_RUN_TIME", Default: "45s", Meaning: "How long one reaper run works at most: rounds of reap, release and admit, until it ends. At least CAR_LOCK_TTL, so a run can carry an admission; at most the reaper function's timeout − 5s, so a run ends inside its invocation."},
	{Name: "REAPER_PAUSE", Default: "100ms", Meaning: "How long a reaper run waits before its next round when the last one found nothing to do while users wait (with nobody waiting the run ends, and the next timer run goes on), and how long it stops admitting after CAR had no idle slot or was unavailable (then it tries one user, and widens back to REAPER_PARALLEL as admissions succeed). An idle round is four short scripts."},
	{Name: "REAPER_MAX_ADMIT", Default: "0", Meaning: "Most users one reaper run (up to REAPER_RUN_TIME long) admits (0: as many as slots free up)."},
	{Name: "REAPER_PARALLEL", Default: "8", Meaning: "Admissions and releases the reaper runs at once; also the most users one round claims."},
	{Name: "REAPER_QUEUES", Default: "16", Meaning: "Queues one reaper invocation works at once, 1–1024. Each invocation probes every queue in one pipelined round trip, then works those with users (rotating where it starts), each under its own lease, so overlapping invocations share the busy queues."},
	{Name: "LANES", Meaning: "Priority lanes of the queue and their weights, `name=weight,...` (e.g. `vip=3,default=1`: of every 4 admissions up to 3 from `vip` while it has users); names 1–32 of `[a-z0-9_-]`, weights 1–100 summing to at most 100, `default` (users without a grant) among them. A user enters a lane with a `Grant` naming it. Empty: one lane, FIFO."},
	{Name: "OPENS_AT", Meaning: "Scheduled opening, RFC 3339 (e.g. `2026-12-24T20:00:00+08:00`). Before it users queue but nobody is admitted and answers carry `OpensInSeconds` instead of `Position`; at it, everyone who joined before is put in a random order drawn from a seed that `/stats` publishes afterwards (`ShuffleSeed`), later arrivals behind them in arrival order. Empty: open."},
	{Name: "MAX_SESSION", Default: "0", Meaning: "Longest session, counted from its first heartbeat (0: no limit). Heartbeat answers then carry `RemainingSeconds`; at the limit the session is destroyed, reason `time_limit`."},
	{Name: "SESSION_WARNING", Default: "5m", Meaning: "How long before MAX_SESSION heartbeat answers carry `Warning`; less than MAX_SESSION when that is set."},
	{Name: "RECORDS_MAX", Default: "100000", Meaning: "Session records kept per queue (`/admin/records`, the webhook), 1000–10000000; the oldest go first."},
	{Name: "WEBHOOK_URL", Meaning: "Where every session record is POSTed as JSON, at least once, signed (`X-Carqueue-Signature: sha256=<hex HMAC-SHA256(WEBHOOK_SECRET, body)>`, `X-Carqueue-Record: <id>`); retried with backoff by the reaper. Empty: none."},
	{Name: "WEBHOOK_SECRET", Meaning: "Key of the webhook signature, at least 16 characters; required with WEBHOOK_URL."},
	{Name: "PORT", ServerOnly: true, Default: "9000", Meaning: "Server mode only (`functions/web`): the port it listens on, on 0.0.0.0 (SCF's web functions expect 9000)."},
	{Name: "REAPER_TICK", ServerOnly: true, Default: "1s", Meaning: "Server mode only: how often the in-process reaper starts a run (runs may overlap; the reaper's lease makes that safe), at least 10ms. The event functions are driven by their timer trigger instead."},
	{Name: "REDIS_POOL_SIZE", ServerOnly: true, Default: "64", Meaning: "Server mode only: Redis connections of the one process, 1–10000 (it serves many requests at once; an SCF event instance serves one and keeps 4)."},
	{Name: "GOGC", ServerOnly: true, Default: "400", Meaning: "Server mode only: the Go collector's target (a percentage of the live heap, 10–10000, or off), the Go runtime's own variable with the server's default. Its live heap is a few MB while each answer allocates ~4 KB, so Go's default of 100 collects dozens of times a second under load; 400 answered ~20% more polls a second at saturation than 100 (BENCHMARKS.md)."},
	{Name: "TICKET_SECRET", Local: LocalTicketSecret, Required: true, Meaning: "HMAC-SHA256 key of the tickets, at least 16 characters. The local default is a fixed, public dev secret: never use it in production."},
	{Name: "TICKET_SECRET_PREVIOUS", Meaning: "The previous TICKET_SECRET, still accepted while rotating (empty: none)."},
	{Name: "GRANT_SECRET", Meaning: "HMAC-SHA256 key of the `Grant`s the business's own backend signs (API.md: `base64url(payload).base64url(HMAC)`), at least 16 characters; empty accepts no grant."},
	{Name: "REQUIRE_GRANT", Default: "0", Meaning: "`1`: every `/start` needs a valid `Grant` for its UserId (401 otherwise); needs GRANT_SECRET."},
	{Name: "ADMIN_TOKEN", Local: LocalAdminToken, Meaning: "Bearer token of `/stats` and the operator routes `/admin/*`; empty turns them off (always 401). Logs name it by a token id (the first 8 hex digits of its SHA-256), never by its value."},
	{Name: "CORS_ORIGIN", Default: "*", Meaning: "`Access-Control-Allow-Origin` of every answer."},
	{Name: "LOG_LEVEL", Default: "info", Meaning: "`debug`, `info`, `warn` or `error`."},
}

// Markdown renders Vars as the README table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Local default | Meaning |\n| --- | --- | --- | --- |\n")
	for _, v := range Vars {
		def := "—"
		if v.Required {
			def = "**required**"
		} else if v.Derived {
			def = "derived"
		} else if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		local := "same"
		if v.Local != "" {
			local = "`" + v.Local + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, def, local, v.Meaning)
	}
	return b.String()
}
