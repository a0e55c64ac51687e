//! Multi-process tests of real `ferry` processes on loopback: crashes, pauses,
//! whole-cluster restarts, bad input, and `ferry up` supervision.
//!
//! Layout:
//! - [`harness`]: starting, killing, pausing and restarting `ferry master` processes;
//!   `LocalUp`, the `ferry up` with kubectl the end-to-end tests start from; polling.
//! - [`procs`]: running `ferry` commands, finding processes, free ports, log tails.
//! - [`certs`]: masters renew their certificates before they expire (QUIC and
//!   HTTPS present the new one; an open connection carries on; no restart);
//!   `ferry ca rotate` through trust, reissue and drop on `ferry up` with a node
//!   running a pod (refusals named; an old-CA-only client refused after the drop).
//! - [`chaos`]: a bounded soak of crashes and pauses with large values and stalling
//!   watchers: a short one (every fault kind once) in CI, a long one as a command.
//! - [`churn`]: leadership churn under heavy load with a follower down (a command:
//!   terms passed and the longest time without a commit).
//! - [`chaos_cmd`]: `ferry chaos --seconds 30`: linearizable, nothing lost, watches whole,
//!   converged; `ferry chaos check` passes its history and fails a corrupted copy.
//! - [`crash`]: SIGKILL of the leader under load and of every master, and a power
//!   failure of every master (stores put back to their last sync); no acknowledged
//!   write lost.
//! - [`failover`]: `ferry bench failover --rounds 1`: its summary line, no write lost.
//! - [`fork`]: a leader that lost unflushed entries in a SIGKILL does not resume its
//!   term (which would give their log ids to different entries).
//! - [`operations`]: `ferry cluster status` health (reachable, last contact, down
//!   for); `ferry cluster replace` of a dead master under load (refusals named, no
//!   failed write, three live voters after); scheduled backups kept to `keep` and
//!   restored; a rolling restart (SIGTERM, restart, caught up) under load with no
//!   failed client request.
//! - [`pause`]: a SIGSTOPped leader is replaced and serves no stale read after SIGCONT.
//! - [`cli`]: `ferry api-resources`; a closed stdout pipe ends the command quietly.
//! - [`bad_input`]: malformed frames, foreign or missing certificates, bad join tokens,
//!   corrupt config files.
//! - [`nodes`]: nodes join with bootstrap tokens (bad ones refused) and run pods as
//!   real processes (env, init containers, back-off, graceful stop, re-adoption after
//!   a SIGKILL of their agent); NodeRestriction.
//! - [`up`]: `ferry up` brings a cluster up, restarts a killed master, and stops everything;
//!   a master removed from the cluster is left stopped.
//! - [`objects`]: the kubectl-like CLI against `ferry up`: apply, get in every format,
//!   scale, delete with each cascade policy, `get -w` across the SIGKILL of its master.
//! - [`recovery`]: `ferry snapshot save` and `ferry master --init --restore`; damaged
//!   snapshot files refused; `ferry master --force-new-cluster` after quorum is lost.
//! - [`retry`]: a write retried after its master went silent applies once and answers
//!   its one outcome (never a false conflict or AlreadyExists); so do object writes
//!   (a generateName create whose master was SIGKILLed, an update, a delete).
//! - [`stop`]: a SIGTERMed master exits at once with everything it acknowledged on
//!   disk; `ferry up` reports a master that cannot start at once; logs in files are plain.
//! - [`storage`]: StatefulSet claims bound to local-path volumes on their pods' nodes;
//!   data outlives a pod; claims in use kept; volumes and directories removed with them.
//! - [`watch`]: a watch streams on across the SIGKILL of the master serving it.
//! - [`network`]: pod addresses in namespaces, Services (ClusterIP, NodePort,
//!   LoadBalancer, UDP, headless) through the nodes' proxies, cluster DNS, unready
//!   and deleted endpoints, unreachable cluster addresses, cleanup on stop (root).
//! - [`ingress`]: the ingress controller: default IngressClass, host and path routing
//!   through every node's listener, 404/503, status addresses, HTTPS with kubectl's
//!   TLS Secrets by SNI, keep-alive, a missing Secret's Event (root).
//! - [`eviction`]: node-pressure eviction: a node over its memory threshold reports
//!   MemoryPressure, is tainted, evicts its BestEffort pod; the ReplicaSet replaces it;
//!   a new BestEffort pod is refused at admission; SIGTERM shuts the node down
//!   gracefully (NotReady, its critical pod `Failed`/`Terminated`).
//! - [`netpol`]: NetworkPolicy on two real nodes: default-deny ingress times
//!   connections out, allow rules by pod/namespace selector and port, egress rules,
//!   deleting the policies restores connectivity (root).
//! - [`workloads`]: Deployments through kubectl: rollout within maxSurge/maxUnavailable
//!   at every watch event, history, undo, scaling, unschedulable pods, a dead node's
//!   replicas replaced; `kubectl rollout history|undo daemonset` by ControllerRevisions.

mod bad_input;
mod certs;
mod chaos;
mod chaos_cmd;
mod churn;
mod cli;
mod crash;
mod eviction;
mod failover;
mod fork;
mod harness;
mod ingress;
mod kubectl;
mod netpol;
mod network;
mod nodes;
mod objects;
mod operations;
mod pause;
mod procs;
mod recovery;
mod retry;
mod stop;
mod storage;
mod up;
mod watch;
mod workloads;
