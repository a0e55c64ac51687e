//! Rolling updates, simulated pass by pass.

use super::*;

/// The set on image db:2 with `strategy`.
fn updated(replicas: i32, strategy: Value) -> StatefulSet {
    sts(
        replicas,
        json!({"spec": {
            "updateStrategy": strategy,
            "template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}
        }}),
    )
}

/// Runs passes until one does nothing, applying each: deleted pods vanish,
/// created ones start Running and Ready, and the status is stored. Returns
/// the deletions in order. Checks that at most `max_down` wanted pods are
/// ever missing at once.
fn settle(set: &mut StatefulSet, pods: &mut Vec<Arc<Pod>>, max_down: usize) -> Vec<String> {
    let mut deletions = Vec::new();
    for _ in 0..50 {
        let d = reconcile(set, pods, now());
        if let Some(s) = d.status.clone() {
            set.status = Some(s);
        }
        if d.create.is_empty() && d.delete.is_empty() {
            return deletions;
        }
        pods.retain(|p| {
            !d.delete
                .iter()
                .any(|(n, _)| p.metadata.name.as_ref() == Some(n))
        });
        deletions.extend(d.delete.iter().map(|(n, _)| n.clone()));
        let missing = usize::try_from(replicas(set)).unwrap() - pods.len();
        assert!(missing <= max_down, "{missing} pods down at once");
        for mut p in d.create {
            let name = p.metadata.name.clone().unwrap();
            p.metadata.uid = Some(format!("uid-{name}"));
            p.status = pod("x", "r", Some(60), json!({})).status.clone();
            pods.push(Arc::new(p));
        }
    }
    panic!("the update does not settle");
}

fn revisions(pods: &[Arc<Pod>]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                revision(p).unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rolls_from_the_top_down_one_pod_at_a_time() {
    let mut set = updated(3, json!(null));
    let (old, new) = (old(), rev(&set));
    assert_ne!(old, new);
    set.status =
        Some(serde_json::from_value(json!({"replicas": 3, "currentRevision": old})).unwrap());
    let mut pods = ready_pods(3);
    let first = reconcile(&set, &pods, now());
    assert_eq!(deleted(&first), ["web-2"]);
    let s = first.status.unwrap();
    assert_eq!(s.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(s.update_revision.as_deref(), Some(new.as_str()));
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(3), None));
    assert_eq!(settle(&mut set, &mut pods, 1), ["web-2", "web-1", "web-0"]);
    assert!(revisions(&pods).iter().all(|(_, r)| *r == new));
    let s = set.status.unwrap();
    assert_eq!(
        s.current_revision.as_deref(),
        Some(new.as_str()),
        "complete: current moves"
    );
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(3), Some(3)));
}

#[test]
fn the_partition_keeps_lower_ordinals_on_the_old_revision() {
    let mut set = updated(4, json!({"rollingUpdate": {"partition": 2}}));
    let mut pods = ready_pods(4);
    set.status =
        Some(serde_json::from_value(json!({"replicas": 4, "currentRevision": old()})).unwrap());
    assert_eq!(settle(&mut set, &mut pods, 1), ["web-3", "web-2"]);
    let (old, new) = (old(), rev(&set));
    let want: Vec<(String, String)> = [(0, &old), (1, &old), (2, &new), (3, &new)]
        .iter()
        .map(|(i, r)| (format!("web-{i}"), r.to_string()))
        .collect();
    assert_eq!(revisions(&pods), want);
    let s = set.status.unwrap();
    assert_eq!(
        s.current_revision.as_deref(),
        Some(old.as_str()),
        "not complete below the partition"
    );
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(2), Some(2)));
}

#[test]
fn an_update_waits_until_every_pod_is_running_and_ready() {
    let set = updated(3, json!(null));
    let r = old();
    let cases = [
        ("web-0 not ready", pod("web-0", &r, None, json!({})), 0),
        (
            "web-1 terminating",
            pod("web-1", &r, Some(60), terminating_patch()),
            1,
        ),
        (
            "web-2 pending",
            pod("web-2", &r, None, json!({"status": {"phase": "Pending"}})),
            2,
        ),
    ];
    for (why, p, i) in cases {
        let mut pods = ready_pods(3);
        pods[i] = p;
        let d = reconcile(&set, &pods, now());
        assert!(d.delete.is_empty() && d.create.is_empty(), "{why}");
    }
    // In Parallel the budget still counts the unhealthy pod.
    let mut parallel = updated(3, json!(null));
    parallel.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
    let mut pods = ready_pods(3);
    pods[0] = pod("web-0", &r, None, json!({}));
    assert!(reconcile(&parallel, &pods, now()).delete.is_empty());
}

/// (why, maxUnavailable, pods replaced by index, the pods deleted)
type Case<'a> = (&'a str, Value, Vec<(usize, Arc<Pod>)>, Vec<&'a str>);

#[test]
fn max_unavailable_replaces_several_from_the_top() {
    let (r, new) = (old(), rev(&updated(4, json!(null))));
    // (why, maxUnavailable, pods patched, the pods deleted)
    let cases: Vec<Case> = vec![
        ("two at once", json!(2), vec![], vec!["web-3", "web-2"]),
        ("50% of 4", json!("50%"), vec![], vec!["web-3", "web-2"]),
        (
            "30% of 4 rounds up to 2",
            json!("30%"),
            vec![],
            vec!["web-3", "web-2"],
        ),
        (
            "an unhealthy pod takes one",
            json!(2),
            vec![(0, pod("web-0", &r, None, json!({})))],
            vec!["web-3"],
        ),
        (
            "updated pods are skipped",
            json!(2),
            vec![(3, pod("web-3", &new, Some(60), json!({})))],
            vec!["web-2", "web-1"],
        ),
    ];
    for (why, max, patched, want) in cases {
        let mut set = updated(4, json!({"rollingUpdate": {"maxUnavailable": max}}));
        set.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
        let mut pods = ready_pods(4);
        for (i, p) in patched {
            pods[i] = p;
        }
        let d = reconcile(&set, &pods, now());
        assert_eq!(deleted(&d), want, "{why}");
    }
}

#[test]
fn on_delete_never_replaces_pods() {
    let set = updated(3, json!({"type": "OnDelete"}));
    let mut pods = ready_pods(3);
    let d = reconcile(&set, &pods, now());
    assert!(d.delete.is_empty() && d.create.is_empty());
    pods.remove(1);
    let d = reconcile(&set, &pods, now());
    assert_eq!(created(&d), ["web-1"]);
    assert_eq!(
        d.create[0].metadata.labels.as_ref().unwrap()[REVISION_LABEL],
        rev(&set)
    );
}

#[test]
fn the_current_revision_moves_only_once_every_pod_is_updated_and_ready() {
    let mut set = updated(2, json!(null));
    let (old, new) = (old(), rev(&set));
    set.status =
        Some(serde_json::from_value(json!({"replicas": 2, "currentRevision": old})).unwrap());
    let current = |pods: &[Arc<Pod>]| {
        let s = reconcile(&set, pods, now()).status.unwrap();
        (s.current_revision.unwrap(), s.current_replicas)
    };
    let starting = [
        pod("web-0", &new, Some(60), json!({})),
        pod("web-1", &new, None, json!({})),
    ];
    assert_eq!(current(&starting), (old.clone(), None));
    let mixed = [
        pod("web-0", &old, Some(60), json!({})),
        pod("web-1", &new, Some(60), json!({})),
    ];
    assert_eq!(current(&mixed), (old.clone(), Some(1)));
    let done = [
        pod("web-0", &new, Some(60), json!({})),
        pod("web-1", &new, Some(60), json!({})),
    ];
    assert_eq!(current(&done), (new, Some(2)));
}

#[test]
fn a_pod_recreated_below_the_partition_gets_the_current_revision() {
    let v1 = sts(3, json!({}));
    // The history as the shell keeps it: revision 1 for db:1.
    let r1 = Arc::new(super::super::revisions(&v1, &[], &[]).create.unwrap());
    assert_eq!(r1.metadata.name.as_deref(), Some(old().as_str()));
    let mut set = updated(3, json!({"rollingUpdate": {"partition": 2}}));
    set.status = Some(StatefulSetStatus {
        current_revision: Some(old()),
        update_revision: Some(rev(&set)),
        ..StatefulSetStatus::default()
    });
    let current = current_template(&set, std::slice::from_ref(&r1));
    assert_eq!(current.as_ref(), Some(&v1.spec.as_ref().unwrap().template));
    let current = Stored {
        current,
        update: None,
    };
    // web-0 is gone; web-1 and web-2 run.
    let pods = vec![
        pod("web-1", &old(), Some(60), json!({})),
        pod("web-2", &rev(&set), Some(60), json!({})),
    ];
    let image = |d: &Decision| {
        let p = &d.create[0];
        (
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap(),
            revision(p).unwrap().to_string(),
        )
    };
    let d = reconcile_with(&set, &pods, &current, now());
    assert_eq!(created(&d), ["web-0"]);
    assert_eq!(image(&d), ("db:1".to_string(), old()));
    // Without the stored revision it can only get the set's template.
    let d = reconcile(&set, &pods, now());
    assert_eq!(image(&d), ("db:2".to_string(), rev(&set)));
    // At or above the partition a pod gets the update revision.
    let d = reconcile_with(&set, &pods[..1], &current, now());
    assert_eq!(created(&d), ["web-0"], "ordered: web-0 first");
    let pods = vec![
        pod("web-0", &old(), Some(60), json!({})),
        pod("web-1", &old(), Some(60), json!({})),
    ];
    let d = reconcile_with(&set, &pods, &current, now());
    assert_eq!(created(&d), ["web-2"]);
    assert_eq!(image(&d), ("db:2".to_string(), rev(&set)));
}

#[test]
fn revisions_keep_what_pods_and_the_status_name() {
    let v1 = sts(2, json!({}));
    let r1 = Arc::new(super::super::revisions(&v1, &[], &[]).create.unwrap());
    let mut set = updated(2, json!({}));
    set.spec.as_mut().unwrap().revision_history_limit = Some(0);
    // The update revision is made as revision 2; revision 1 stays while a
    // pod runs it, or the status names it.
    let p = super::super::revisions(&set, &ready_pods(1), std::slice::from_ref(&r1));
    assert_eq!(
        p.create
            .as_ref()
            .map(|c| (c.metadata.name.clone().unwrap(), c.revision)),
        Some((rev(&set), 2))
    );
    assert!(p.delete.is_empty());
    set.status = Some(StatefulSetStatus {
        current_revision: Some(old()),
        ..StatefulSetStatus::default()
    });
    let p = super::super::revisions(&set, &[], std::slice::from_ref(&r1));
    assert!(p.delete.is_empty());
    set.status = None;
    let p = super::super::revisions(&set, &[], std::slice::from_ref(&r1));
    assert_eq!(p.delete, [(old(), String::new())]);
    let o = &p.create.unwrap().metadata.owner_references.unwrap()[0];
    assert_eq!(
        (o.kind.as_str(), o.uid.as_str()),
        ("StatefulSet", "sts-uid")
    );
}

#[test]
fn revisions_are_named_by_the_template_hash_and_labelled_with_it() {
    let set = sts(2, json!({}));
    let p = super::super::revisions(&set, &[], &[]);
    let r = p.create.unwrap();
    let hash = crate::meta::template_hash(&set.spec.as_ref().unwrap().template, None);
    assert_eq!(
        r.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(p.name, format!("web-{hash}"));
    let labels = r.metadata.labels.unwrap();
    assert_eq!(labels[crate::history::REVISION_HASH_LABEL], hash);
    assert!(
        !labels.contains_key(crate::history::HASH_LABEL),
        "{labels:?}"
    );
    // Pods and the status carry the revision's name.
    let d = reconcile(&set, &[], now());
    assert_eq!(revision(&d.create[0]), Some(format!("web-{hash}").as_str()));
    let s = d.status.unwrap();
    assert_eq!(s.update_revision, Some(format!("web-{hash}")));
    assert_eq!(s.current_revision, Some(format!("web-{hash}")));
}

#[test]
fn a_stored_revision_of_the_template_keeps_its_name() {
    // The template's revision was stored before a collision bumped the
    // count: its name stands, as `FindEqualRevisions` finds it.
    let mut set = sts(1, json!({}));
    let stored = Arc::new(super::super::revisions(&set, &[], &[]).create.unwrap());
    let name = stored.metadata.name.clone().unwrap();
    set.status = Some(StatefulSetStatus {
        collision_count: Some(1),
        ..StatefulSetStatus::default()
    });
    let p = super::super::revisions(&set, &[], std::slice::from_ref(&stored));
    assert!(p.create.is_none() && !p.collision);
    assert_eq!(p.name, name);
    let at = Stored {
        current: None,
        update: Some(p.name.clone()),
    };
    let d = reconcile_with(&set, &[], &at, now());
    assert_eq!(revision(&d.create[0]), Some(name.as_str()));
    let s = d.status.unwrap();
    assert_eq!(s.update_revision.as_deref(), Some(name.as_str()));
    assert_eq!(s.current_revision.as_deref(), Some(name.as_str()));
    // Without it the hash with the count would name a revision never stored.
    let d = reconcile(&set, &[], now());
    assert_ne!(revision(&d.create[0]), Some(name.as_str()));
}
