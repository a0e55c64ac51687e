//! Events about this node's pods, as the kubelet records them: its reasons
//! and messages (`pkg/kubelet/events`, `kuberuntime`), each about the pod or
//! one of its containers (`involvedObject.fieldPath`); about the node itself
//! (`Starting`, `NodeReady`, `NodeHasSufficientMemory`, `NodeNotSchedulable`,
//! ... — [`NodeChanges`], [`status_changes`]); and the [`Recorder`]
//! that folds a repeat into the Event it repeats (`count`, `lastTimestamp`)
//! as client-go's event correlator does: a crash-looping container keeps one
//! Event per message, not one per restart.

use crate::objects::{code_of, Objects};
pub use ferry_api::eventrecorder::{Recorder, Write, REMEMBERED};
use serde_json::{json, Value};

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

/// Writes `events` about `pod` as node `node`'s kubelet: new ones created,
/// repeats counted on theirs (best effort: a failed write is logged, not retried).
pub async fn report(
    api: &Objects,
    recorder: &mut Recorder,
    pod: &Value,
    node: &str,
    events: Vec<PodEvent>,
) {
    for e in events {
        let event = crate::node::event(pod, node, &e, &crate::now());
        record(api, recorder, &event).await;
    }
}

/// Writes one Event object: created when new, else counted on the Event it
/// repeats (best effort).
pub async fn record(api: &Objects, recorder: &mut Recorder, event: &Value) {
    if let Write::Patch {
        namespace,
        name,
        patch,
    } = recorder.observe(event)
    {
        match api
            .patch("events", Some(&namespace), &name, None, &patch)
            .await
        {
            Ok(_) => return,
            Err(err) if code_of(&err) == Some(404) => recorder.lost(event),
            Err(err) => {
                tracing::debug!(error = %err, "counting a repeated event failed");
                return;
            }
        }
    }
    let ns = event["metadata"]["namespace"].as_str().unwrap_or("default");
    match api.create("events", Some(ns), event).await {
        Ok(made) => {
            if let Some(name) = made.pointer("/metadata/name").and_then(Value::as_str) {
                recorder.created(event, name);
            }
        }
        Err(err) => tracing::debug!(error = %err, "recording an event failed"),
    }
}

/// An Event about this node itself, as the kubelet records one: about the
/// Node named `node` with the node's name as its uid (the kubelet's
/// `nodeRef`; `kubectl describe node` looks for both uids), in `default`.
pub fn node_event(node: &str, reason: &str, message: &str, now: &str) -> Value {
    let mut event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{node}."), "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": reason,
        "message": message,
        "type": "Normal",
    });
    crate::node::from_kubelet(&mut event, node, now);
    event
}

/// The kubelet's words for a change of its node's status (`NodeReady`,
/// `NodeNotSchedulable`, ...): `Node NAME status is now: REASON`.
pub fn node_status_message(node: &str, reason: &str) -> String {
    format!("Node {node} status is now: {reason}")
}

/// What the agent last recorded of its Node, so each change is one Event,
/// as the kubelet's `lastNodeUnschedulable` and Ready condition setter do.
#[derive(Debug, Default)]
pub struct NodeChanges {
    /// `spec.unschedulable` as last recorded (a new agent starts schedulable).
    unschedulable: bool,
}

impl NodeChanges {
    /// `NodeNotSchedulable` / `NodeSchedulable` when the stored Node's
    /// `spec.unschedulable` differs from the last one recorded.
    pub fn schedulable(&mut self, stored: &Value) -> Option<&'static str> {
        let now = stored["spec"]["unschedulable"].as_bool().unwrap_or(false);
        if now == self.unschedulable {
            return None;
        }
        self.unschedulable = now;
        Some(if now {
            "NodeNotSchedulable"
        } else {
            "NodeSchedulable"
        })
    }
}

/// The Events a status write makes over the stored Node (`None`: not
/// registered yet), as the kubelet's condition setters record them: each of
/// `status`'s conditions whose status differs from the stored one's (or that
/// is new) — `NodeReady`/`NodeNotReady`, `NodeHasSufficientMemory`/
/// `NodeHasInsufficientMemory`, `NodeHasNoDiskPressure`/`NodeHasDiskPressure`,
/// `NodeHasSufficientPID`/`NodeHasInsufficientPID` —, in the kubelet's order
/// (pressures first, Ready last).
pub fn status_changes(stored: Option<&Value>, status: &Value) -> Vec<&'static str> {
    const EVENTS: [(&str, &str, &str); 4] = [
        (
            "MemoryPressure",
            "NodeHasInsufficientMemory",
            "NodeHasSufficientMemory",
        ),
        (
            "DiskPressure",
            "NodeHasDiskPressure",
            "NodeHasNoDiskPressure",
        ),
        (
            "PIDPressure",
            "NodeHasInsufficientPID",
            "NodeHasSufficientPID",
        ),
        ("Ready", "NodeReady", "NodeNotReady"),
    ];
    let condition = |status: Option<&Value>, t: &str| -> Option<String> {
        status?
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str().map(str::to_string))
    };
    let before = stored.and_then(|n| n.get("status"));
    EVENTS
        .iter()
        .filter_map(|(t, on, off)| {
            let now = condition(Some(status), t)?;
            if condition(before, t).as_deref() == Some(now.as_str()) {
                return None;
            }
            // A Ready that stops being True is NotReady, whatever it says.
            Some(if now == "True" { *on } else { *off })
        })
        .collect()
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
    fn the_node_s_own_events_are_the_kubelets() {
        let e = node_event("n1", "Starting", "Starting kubelet.", "t");
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(
            e["involvedObject"],
            json!({"kind": "Node", "name": "n1", "uid": "n1"})
        );
        assert_eq!(e["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(
            node_status_message("n1", "NodeReady"),
            "Node n1 status is now: NodeReady"
        );
        // Cordon and uncordon, each once; a new agent starts schedulable.
        let mut c = NodeChanges::default();
        let node = |u: Option<bool>| json!({"spec": {"unschedulable": u}});
        assert_eq!(c.schedulable(&node(None)), None);
        assert_eq!(c.schedulable(&node(Some(true))), Some("NodeNotSchedulable"));
        assert_eq!(c.schedulable(&node(Some(true))), None);
        assert_eq!(c.schedulable(&node(Some(false))), Some("NodeSchedulable"));
        assert_eq!(c.schedulable(&node(None)), None);
        let mut cordoned = NodeChanges::default();
        assert_eq!(
            cordoned.schedulable(&node(Some(true))),
            Some("NodeNotSchedulable")
        );
        // Conditions: each new or changed one, pressures before Ready.
        let status = |ready: &str, memory: &str| {
            json!({"conditions": [
                {"type": "MemoryPressure", "status": memory},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PIDPressure", "status": "False"},
                {"type": "Ready", "status": ready},
            ]})
        };
        let stored = |ready: &str, memory: &str| json!({"status": status(ready, memory)});
        assert_eq!(
            status_changes(None, &status("True", "False")),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID",
                "NodeReady"
            ]
        );
        // Marked unreachable by the node controller: every condition Unknown.
        let mut unknown = stored("Unknown", "Unknown");
        for c in unknown["status"]["conditions"].as_array_mut().unwrap() {
            c["status"] = json!("Unknown");
        }
        assert_eq!(
            status_changes(Some(&stored("True", "False")), &status("True", "False")),
            Vec::<&str>::new()
        );
        assert_eq!(
            status_changes(Some(&unknown), &status("True", "False")),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID",
                "NodeReady"
            ]
        );
        assert_eq!(
            status_changes(Some(&stored("True", "False")), &status("True", "True")),
            ["NodeHasInsufficientMemory"]
        );
        assert_eq!(
            status_changes(Some(&stored("True", "False")), &status("False", "False")),
            ["NodeNotReady"]
        );
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
