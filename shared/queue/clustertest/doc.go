// Package clustertest holds the tests of the queue on a real Redis Cluster that a cluster
// client alone cannot show: a queue's hash slot migrating between primaries (MOVED and ASK
// redirections, TRYAGAIN while its keys move) and a primary failing over to its replica, both
// while users join, poll, get claimed and leave; and, with Sentinel, a primary killed outright.
// The cluster tests need REDIS_CLUSTER_ADDRS (the nodes of a cluster, as
// scripts/redis-cluster.sh starts one); they skip without it, and fail under CI=true, where
// .ci/run starts the cluster. The Sentinel test starts its own primary, replica and sentinel
// (redis-server on PATH).
//
// They change the cluster's topology (slot owners, an extra replica), so they put it back
// when they end: the slot returns to its primary, the replica is failed back, forgotten and
// stopped.
package clustertest
