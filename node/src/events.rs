//! Events about this node's pods, as the kubelet records them: its reasons
//! and messages (`pkg/kubelet/events`, `kuberuntime`), each about the pod or
//! one of its containers (`involvedObject.fieldPath`), and the [`Recorder`]
//! that folds a repeat into the Event it repeats (`count`, `lastTimestamp`)
//! as client-go's event correlator does: a crash-looping container keeps one
//! Event per message, not one per restart.

use crate::objects::{code_of, Objects};
use serde_json::{json, Value};
use std::collections::HashMap;

/// An event the agent reports about one of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    /// Why (`Started`, `BackOff`, ...).
    pub reason: String,
    /// What happened, in the kubelet's words.
    pub message: String,
    /// The container it is about (`spec.containers{main}`); none for the pod.
    pub field_path: Option<String>,
}

impl PodEvent {
    /// A Warning about the pod itself.
    pub fn warning(reason: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            kind: "Warning",
            reason: reason.into(),
            message: message.into(),
            field_path: None,
        }
    }

    /// An event about the container at `field_path`.
    pub fn container(
        field_path: &str,
        kind: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> PodEvent {
        PodEvent {
            kind,
            reason: reason.into(),
            message: message.into(),
            field_path: Some(field_path.into()),
        }
    }
}

/// A container's `involvedObject.fieldPath`: `spec.containers{main}`, and
/// `initContainers`, `ephemeralContainers` for theirs (`list` is the spec's key).
pub fn field_path(list: &str, name: &str) -> String {
    format!("spec.{list}{{{name}}}")
}

/// What the kubelet reports as it starts a container: the image (ferry runs
/// processes, so every image is "present", as with `IfNotPresent` and the
/// image on the machine), then the container created and started.
pub fn started(field_path: &str, name: &str, image: &str) -> [PodEvent; 3] {
    [
        PodEvent::container(
            field_path,
            "Normal",
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        ),
        PodEvent::container(
            field_path,
            "Normal",
            "Created",
            format!("Created container: {name}"),
        ),
        PodEvent::container(
            field_path,
            "Normal",
            "Started",
            format!("Started container {name}"),
        ),
    ]
}

/// The kubelet stopping a container: `message` says why, `None` for a pod
/// that stops (deleted, evicted, shutting down).
pub fn killing(field_path: &str, name: &str, message: Option<String>) -> PodEvent {
    let message = message.unwrap_or_else(|| format!("Stopping container {name}"));
    PodEvent::container(field_path, "Normal", "Killing", message)
}

/// Why the kubelet kills a container whose liveness or startup probe failed
/// (`probe`: `liveness`, `startup`); `restart` when the pod's policy restarts it.
pub fn probe_kill_message(name: &str, probe: &str, restart: bool) -> String {
    let message = format!("Container {name} failed {probe} probe");
    if restart {
        format!("{message}, will be restarted")
    } else {
        message
    }
}

/// A restart held back: `Back-off restarting failed container NAME in pod
/// NAME_NAMESPACE(UID)` (the kubelet's `format.Pod`).
pub fn back_off(field_path: &str, name: &str, pod: &Value) -> PodEvent {
    let m = &pod["metadata"];
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    PodEvent::container(
        field_path,
        "Warning",
        "BackOff",
        format!(
            "Back-off restarting failed container {name} in pod {}_{}({})",
            s("name"),
            s("namespace"),
            s("uid")
        ),
    )
}

/// Events the recorder remembers at most (client-go's LRU size); the least
/// recently seen goes first.
pub const REMEMBERED: usize = 4096;

/// What makes two events one: client-go's event key, less the source, which
/// is this node's for all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    field_path: String,
    kind: String,
    reason: String,
    message: String,
}

impl Key {
    fn of(event: &Value) -> Key {
        let s = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or_default();
        Key {
            uid: s("/involvedObject/uid").into(),
            field_path: s("/involvedObject/fieldPath").into(),
            kind: s("/type").into(),
            reason: s("/reason").into(),
            message: s("/message").into(),
        }
    }
}

/// An Event this node wrote.
#[derive(Debug)]
struct Written {
    namespace: String,
    name: String,
    count: u64,
    /// When it was last seen, in observations.
    used: u64,
}

/// How to write an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new Event.
    Create(Value),
    /// A repeat: a merge patch of the Event `namespace/name`.
    Patch {
        /// The Event's namespace.
        namespace: String,
        /// The Event's name.
        name: String,
        /// `count` and `lastTimestamp`.
        patch: Value,
    },
}

/// The Events this node wrote, so a repeat counts on the Event it repeats
/// (pure: the shell does the writes and tells it what they gave).
#[derive(Debug, Default)]
pub struct Recorder {
    written: HashMap<Key, Written>,
    observed: u64,
}

impl Recorder {
    /// How to write `event` (an Event object): created when new, else a
    /// count on the Event it repeats.
    pub fn observe(&mut self, event: &Value) -> Write {
        self.observed += 1;
        let Some(w) = self.written.get_mut(&Key::of(event)) else {
            return Write::Create(event.clone());
        };
        w.count += 1;
        w.used = self.observed;
        Write::Patch {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            patch: json!({"count": w.count, "lastTimestamp": event["lastTimestamp"]}),
        }
    }

    /// `event` was created as the Event `name`.
    pub fn created(&mut self, event: &Value, name: &str) {
        let written = Written {
            namespace: event["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            name: name.into(),
            count: event["count"].as_u64().unwrap_or(1),
            used: self.observed,
        };
        self.written.insert(Key::of(event), written);
        if self.written.len() > REMEMBERED {
            let oldest = self
                .written
                .iter()
                .min_by_key(|(_, w)| w.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.written.remove(&k);
            }
        }
    }

    /// The Event `event` repeats is gone (expired): the next is new.
    pub fn lost(&mut self, event: &Value) {
        self.written.remove(&Key::of(event));
    }

    /// Forgets the Events about the pod `uid` (it left this node).
    pub fn forget_pod(&mut self, uid: &str) {
        self.written.retain(|k, _| k.uid != uid);
    }

    /// Events remembered.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }
}

/// Writes `events` about `pod` as node `node`'s kubelet: new ones created,
/// repeats counted on theirs (best effort: a failed write is logged, not retried).
pub async fn report(
    api: &Objects,
    recorder: &mut Recorder,
    pod: &Value,
    node: &str,
    events: Vec<PodEvent>,
) {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    for e in events {
        let event = crate::node::event(pod, node, &e, &crate::now());
        if let Write::Patch {
            namespace,
            name,
            patch,
        } = recorder.observe(&event)
        {
            match api
                .patch("events", Some(&namespace), &name, None, &patch)
                .await
            {
                Ok(_) => continue,
                Err(err) if code_of(&err) == Some(404) => recorder.lost(&event),
                Err(err) => {
                    tracing::debug!(error = %err, "counting a repeated event failed");
                    continue;
                }
            }
        }
        match api.create("events", Some(ns), &event).await {
            Ok(made) => {
                if let Some(name) = made.pointer("/metadata/name").and_then(Value::as_str) {
                    recorder.created(&event, name);
                }
            }
            Err(err) => tracing::debug!(error = %err, "recording an event failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}})
    }

    fn event_of(e: &PodEvent, at: &str) -> Value {
        crate::node::event(&pod(), "n1", e, at)
    }

    #[test]
    fn messages_are_the_kubelets() {
        let fp = field_path("containers", "main");
        assert_eq!(fp, "spec.containers{main}");
        assert_eq!(
            field_path("initContainers", "prep"),
            "spec.initContainers{prep}"
        );
        let got: Vec<(&str, String, String)> = started(&fp, "main", "busybox")
            .into_iter()
            .chain([
                killing(&fp, "main", None),
                killing(
                    &fp,
                    "main",
                    Some(probe_kill_message("main", "liveness", true)),
                ),
                back_off(&fp, "main", &pod()),
            ])
            .map(|e| (e.kind, e.reason, e.message))
            .collect();
        let want = [
            (
                "Normal",
                "Pulled",
                "Container image \"busybox\" already present on machine",
            ),
            ("Normal", "Created", "Created container: main"),
            ("Normal", "Started", "Started container main"),
            ("Normal", "Killing", "Stopping container main"),
            (
                "Normal",
                "Killing",
                "Container main failed liveness probe, will be restarted",
            ),
            (
                "Warning",
                "BackOff",
                "Back-off restarting failed container main in pod web_default(u1)",
            ),
        ];
        assert_eq!(got, want.map(|(k, r, m)| (k, r.to_string(), m.to_string())));
        assert_eq!(
            probe_kill_message("main", "startup", false),
            "Container main failed startup probe"
        );
    }

    #[test]
    fn a_repeat_counts_on_the_event_it_repeats() {
        let mut r = Recorder::default();
        let fp = field_path("containers", "main");
        let [_, _, started] = started(&fp, "main", "busybox");
        let first = event_of(&started, "2026-12-06T00:00:00Z");
        assert_eq!(
            first["involvedObject"]["fieldPath"],
            "spec.containers{main}"
        );
        assert_eq!(first["count"], 1);
        assert_eq!(r.observe(&first), Write::Create(first.clone()));
        r.created(&first, "web.1");
        // The same event again: a count on web.1, not a new Event.
        for (n, at) in [(2, "2026-12-06T00:00:10Z"), (3, "2026-12-06T00:00:30Z")] {
            assert_eq!(
                r.observe(&event_of(&started, at)),
                Write::Patch {
                    namespace: "default".into(),
                    name: "web.1".into(),
                    patch: json!({"count": n, "lastTimestamp": at}),
                }
            );
        }
        // Another container, reason or message is another Event.
        let other = field_path("containers", "side");
        let [_, _, side] = super::started(&other, "side", "busybox");
        assert!(matches!(r.observe(&event_of(&side, "t")), Write::Create(_)));
        let killed = killing(&fp, "main", None);
        assert!(matches!(
            r.observe(&event_of(&killed, "t")),
            Write::Create(_)
        ));
        // Expired meanwhile: the next one is new again, counted from one.
        r.lost(&first);
        assert_eq!(r.observe(&first), Write::Create(first.clone()));
        r.created(&first, "web.2");
        assert!(matches!(r.observe(&first), Write::Patch { name, .. } if name == "web.2"));
        // A pod gone from the node is forgotten.
        r.forget_pod("u1");
        assert!(r.is_empty());
    }

    #[test]
    fn the_recorder_remembers_a_bounded_number_of_events() {
        let mut r = Recorder::default();
        let message = |i: usize| PodEvent::warning("Unhealthy", format!("probe {i}"));
        let add = |r: &mut Recorder, i: usize| {
            let e = event_of(&message(i), "t");
            assert!(matches!(r.observe(&e), Write::Create(_)));
            r.created(&e, &format!("web.{i}"));
        };
        for i in 0..REMEMBERED {
            add(&mut r, i);
        }
        // The first seen again: the second is now the least recently seen.
        assert!(matches!(
            r.observe(&event_of(&message(0), "t")),
            Write::Patch { .. }
        ));
        add(&mut r, REMEMBERED);
        assert_eq!(r.len(), REMEMBERED);
        assert!(matches!(
            r.observe(&event_of(&message(0), "t")),
            Write::Patch { .. }
        ));
        assert!(matches!(
            r.observe(&event_of(&message(1), "t")),
            Write::Create(_)
        ));
    }
}
