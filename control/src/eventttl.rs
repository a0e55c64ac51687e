//! Events expire: Kubernetes keeps an Event for `--event-ttl` (one hour) after
//! its last occurrence (etcd leases do it there); ferry's leader sweeps them.
//! The decision is pure; the shell is `run::events`' sweep.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use std::time::Duration;

/// Kubernetes' default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// When `ev` last happened: the latest of its series' last observation, its
/// `lastTimestamp`, its `eventTime` and its creation. None when it has no time
/// at all (it is then kept).
pub fn last_seen(ev: &Event) -> Option<Timestamp> {
    [
        ev.series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        ev.last_timestamp.as_ref().map(|t| t.0),
        ev.event_time.as_ref().map(|t| t.0),
        ev.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// Whether `ev` is older than `ttl` at `now`.
pub fn expired(ev: &Event, now: Timestamp, ttl: Duration) -> bool {
    let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX);
    last_seen(ev).is_some_and(|t| now.duration_since(t) > ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: serde_json::Value) -> Event {
        let mut base = json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {}});
        for (k, x) in v.as_object().unwrap() {
            if k == "metadata" {
                base["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .extend(x.as_object().unwrap().clone());
            } else {
                base[k] = x.clone();
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn events_expire_an_hour_after_they_last_happened() {
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        let hour = DEFAULT_TTL;
        let cases = [
            (
                "created 2 h ago, nothing else",
                json!({"metadata": {"creationTimestamp": "2026-12-05T10:00:00Z"}}),
                true,
            ),
            (
                "created 59 min ago",
                json!({"metadata": {"creationTimestamp": "2026-12-05T11:01:00Z"}}),
                false,
            ),
            // An aggregated event repeated recently lives on.
            (
                "created 2 h ago, last seen 10 min ago",
                json!({"metadata": {"creationTimestamp": "2026-12-05T10:00:00Z"},
                "lastTimestamp": "2026-12-05T11:50:00Z"}),
                false,
            ),
            (
                "events.k8s.io style: series observed recently",
                json!({"metadata": {"creationTimestamp": "2026-12-05T09:00:00Z"},
                "eventTime": "2026-12-05T09:00:00.000000Z",
                "series": {"count": 3, "lastObservedTime": "2026-12-05T11:30:00.000000Z"}}),
                false,
            ),
            (
                "eventTime only, old",
                json!({"eventTime": "2026-12-05T10:30:00.000000Z"}),
                true,
            ),
            (
                "exactly one hour: kept",
                json!({"lastTimestamp": "2026-12-05T11:00:00Z"}),
                false,
            ),
            ("no time at all: kept", json!({}), false),
        ];
        for (name, v, want) in cases {
            assert_eq!(expired(&ev(v), now, hour), want, "{name}");
        }
        // A shorter TTL from the configuration.
        let e = ev(json!({"lastTimestamp": "2026-12-05T11:58:00Z"}));
        assert!(expired(&e, now, Duration::from_secs(60)));
        assert!(!expired(&e, now, Duration::from_secs(180)));
    }
}
