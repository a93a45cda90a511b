// Package queue is the fair line in front of a CAR project, held entirely in Redis so that any
// function instance can serve any request at any moment.
//
// Every state change is one Lua script whose keys all share the queue's hash tag (keys.go), so
// it is atomic and a Redis Cluster runs it on the queue's one slot. Two exceptions need no
// atomicity beyond one command's: the common poll (a queued user's last-seen write, rank and
// length, a pipeline of plain commands, lastseen.go) and the reaper's scan of last-seen. Every
// call's commands are sent with the other calls in flight, one pipeline for all (pipeline.go). Time comes from an
// injectable clock and is passed to the scripts, never read inside Redis, so tests (and every
// function instance) agree on deadlines. The scripts are assembled from shared helpers
// (lua.go); testdata/<script>.lua holds each one exactly as Redis runs it, and
// TestScriptsGolden fails until a changed script's file is regenerated, after review, with
//
//	go test ./shared/queue -run TestScriptsGolden -update
//
// # States
//
// A user is in one state at a time: StateNone (unknown, or gone, and then remembered with its
// Reason for GoneRetention), Queued, or one of the four that hold a slot: Admitting, Ready,
// Active, Releasing. At most Capacity users hold a slot; a Releasing user's slot is free only
// once Released says CAR destroyed its session. The table is every change a script makes, the
// method and script (testdata/<script>.lua) that make it, and who calls it: "session" is the
// session service (shared/session: the HTTP routes, and the reaper's admissions and releases go
// through it too), "reaper" is the timer run (shared/reaper). Events not listed change nothing:
// a heartbeat of a Queued, Admitting or Releasing user, a reattach of anyone else, a stop of an
// unknown user, a claim result (mark_ready, requeue, refuse) whose token is no longer current
// (ErrLeaseLost), released of a user not Releasing (ErrNotHolding).
//
//	from         event                               to                             method (script)           caller
//	None         join                                Queued, at the back of its     Join (join)               session
//	                                                 lane (lanes.go)
//	Queued       join, poll                          Queued, same place, seen now   Join (join), Poll (poll)  session
//	holding      join, poll                          unchanged (client refreshed)   Join (join), Poll (poll)  session
//	Queued       at the head, a slot free            Admitting, claim lease         ClaimUser (claim)         session
//	                                                                                Claim (claim)             reaper
//	Ready        reattach before ready deadline      Admitting, remembers Ready     Reattach (reattach)       session
//	Active       reattach before heartbeat deadline  Admitting, remembers Active    Reattach (reattach)       session
//	Admitting    CAR session created                 Ready, ready deadline          MarkReady (mark_ready)    session
//	Admitting    transient failure                   Queued at its old place, or    Requeue (requeue)         session
//	                                                 the remembered state+deadline
//	Admitting    claim lease expired                 as Requeue                     Reap (reap)               reaper
//	Admitting    refused, not locked, no reattach    None, car_refused              Refuse (refuse)           session
//	Admitting    refused, locked or a reattach       Releasing, car_refused         Refuse (refuse)           session
//	Ready        heartbeat                           Active, heartbeat deadline     Heartbeat (heartbeat)     session
//	Active       heartbeat                           Active, deadline moved on      Heartbeat (heartbeat)     session
//	Ready        ready deadline passed               Releasing, never_started       Reap (reap)               reaper
//	Active       heartbeat deadline passed           Releasing, heartbeat_timeout   Reap (reap)               reaper
//	Ready        late return, ready deadline passed  Releasing, never_started       Expire (expire)           session
//	Active       late return, deadline passed        Releasing, heartbeat_timeout   Expire (expire)           session
//	Queued       unseen for QueueIdleTimeout         None, idle                     Reap (reap)               reaper
//	Queued       stop                                None, stopped                  Stop (stop)               session
//	Adm/Rdy/Act  stop                                Releasing, stopped             Stop (stop)               session
//	Queued       kick                                None, kicked                   Kick (stop)               session
//	Adm/Rdy/Act  kick                                Releasing, kicked              Kick (stop)               session
//	Active       MaxSession since first heartbeat    Releasing, time_limit          Reap (reap)               reaper
//	Releasing    stop                                unchanged                      Stop (stop)               session
//	Releasing    CAR destroyed the session           None, its reason               Released (released)       session
//	Releasing    DestroySession failed               Releasing, next attempt later  RetryRelease (retry_release) session
//	None, gone   GoneRetention passed                None, reason forgotten         Reap (reap)               reaper
//
// A claim is current while the user is Admitting under its token; a lease that ran out still
// lets MarkReady finish until Reap returns the user. A reattach keeps the user's slot and, if
// it fails, its previous state and deadline, because its earlier CAR session may still run.
//
// Every departure (to None from Queued or Admitting, to Releasing from a holding state) also
// leaves a record in the rec stream (operator.go; the join time comes from the jt checkpoints,
// score.go).
//
// The operator's side (operator.go): control (SetPaused, SetNotice, SetCapacity,
// ResetCapacity: a field of cfg the claim script reads, so admission stops or resizes at once
// everywhere); undelivered, delivered and delivery_failed (Undelivered, Delivered,
// DeliveryFailed: the webhook's cursor and backoff, by the reaper); and the read-only
// controls (Controls), holders (Holders), records and newest_records (Records, Newest),
// history (History) and eta_errors (ETAError), by the session service for /admin/* and
// /stats.
//
// Scripts that change no state: releasing (Releasing, by the reaper, to retry DestroySession
// once due),
// stats (Stats, by the session service for /stats and ETAs), dump (CheckInvariants, tests
// only). Outside the user's states: lock and unlock (LockUser, by the session service: one CAR
// call at a time per user) and take_lease, extend_lease and release_lease (TakeLease,
// Lease.Extend and Lease.Release, by the reaper: one run at a time per queue, its short lease
// kept alive while the run works).
//
// Across the queues of one deployment (deployment.go): state (StateOf, by the session service:
// is a user who wants to join another queue still in this one), car_total_due and set_car_total (CARTotalDue and
// SetCARTotal, by the session service: CAR's Total as the capacity of a Capacity-0 queue,
// read by one instance at a time), and home_enter (Homes.Enter: the hint of which queue a
// user is in, one key per user outside every queue). Due, the reaper's probe of every queue,
// runs plain read commands in one pipeline, no script.
package queue
