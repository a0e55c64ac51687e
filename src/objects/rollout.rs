//! `ferry rollout status|history|undo|pause|resume|restart` for Deployments,
//! as kubectl does them: status reads the Deployment's status until the
//! rollout is done (or past its progress deadline); history and undo read the
//! revisions off its ReplicaSets; undo puts an old template back. Status,
//! history, undo and restart also take DaemonSets and StatefulSets (status in
//! kubectl's words for them), whose revisions
//! are their ControllerRevisions (undo sends a revision's data as a
//! strategic merge patch, as kubectl does).

use super::api::{display_name, Api};
use anyhow::{bail, Result};
use ferry_api::object::{ListOptions, PatchType};
use ferry_api::resources::{self, Resource};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The revision annotation the Deployment controller keeps.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// `ferry rollout`.
#[derive(clap::Subcommand)]
pub enum RolloutCmd {
    /// Wait until the rollout is done; non-zero past its progress deadline.
    Status {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
        /// Give up after this many seconds (0: wait for ever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
        /// Print the state once and exit instead of waiting.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
    },
    /// The revisions and their change causes.
    History {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Roll back to the previous revision (or `--to-revision N`).
    Undo {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: u64,
    },
    /// Stop rolling out template changes.
    Pause {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Roll out template changes again.
    Resume {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Replace every pod (a new template annotation, as kubectl does).
    Restart {
        /// deployment/NAME (or deployment NAME).
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn deployment(names: &[String]) -> Result<(&'static Resource, String)> {
    let (res, name) = super::one(names)?;
    if res.kind != "Deployment" {
        bail!(
            "ferry rollout works on deployments; {} are not rolled out",
            res.plural
        );
    }
    Ok((res, name))
}

/// A DaemonSet or StatefulSet for history/undo/restart, or a Deployment.
fn workload(names: &[String]) -> Result<(&'static Resource, String)> {
    let (res, name) = super::one(names)?;
    if !matches!(res.kind, "Deployment" | "DaemonSet" | "StatefulSet") {
        bail!(
            "ferry rollout works on deployments, daemonsets and statefulsets; {} are not rolled out",
            res.plural
        );
    }
    Ok((res, name))
}

/// The ControllerRevisions `set` controls.
async fn owned_revisions(api: &Api, ns: Option<&str>, set: &Value) -> Result<Vec<Value>> {
    let cr = resources::by_cli_name("controllerrevisions").expect("controllerrevisions served");
    let (items, _) = api.list(cr, ns, &ListOptions::default()).await?;
    Ok(items
        .into_iter()
        .filter(|r| controlled_by(r, set))
        .collect())
}

fn controlled_by(o: &Value, owner: &Value) -> bool {
    let uid = &owner["metadata"]["uid"];
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|os| {
            os.iter()
                .any(|r| r["uid"] == *uid && r["controller"] == true)
        })
}

/// Runs a rollout command.
pub async fn run(api: &Api, cmd: RolloutCmd, ns: Option<&str>) -> Result<ExitCode> {
    let ns = Some(ns.unwrap_or("default"));
    match cmd {
        RolloutCmd::Status {
            names,
            timeout,
            watch,
        } => {
            let (res, name) = workload(&names)?;
            status(api, res, ns, &name, timeout, watch).await
        }
        RolloutCmd::History { names } => {
            let (res, name) = workload(&names)?;
            let d = must_get(api, res, ns, &name).await?;
            let table = if res.kind == "Deployment" {
                history_table(&owned_replicasets(api, ns, &d).await?)
            } else {
                revisions_table(&owned_revisions(api, ns, &d).await?)
            };
            outln!("{}", display_name(res, &name));
            outln!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCmd::Undo { names, to_revision } => {
            let (res, name) = workload(&names)?;
            let d = must_get(api, res, ns, &name).await?;
            if res.kind != "Deployment" {
                let revs = owned_revisions(api, ns, &d).await?;
                let to = i64::try_from(to_revision).unwrap_or(i64::MAX);
                match revision_undo(&d, &revs, to)? {
                    (n, None) => outln!(
                        "{} skipped rollback (current template already matches revision {n})",
                        display_name(res, &name)
                    ),
                    (_, Some(patch)) => {
                        api.patch(res, ns, &name, PatchType::Strategic, &patch, None)
                            .await?;
                        outln!("{} rolled back", display_name(res, &name));
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let rss = owned_replicasets(api, ns, &d).await?;
            match undo_patch(&d, &rss, to_revision)? {
                None => outln!(
                    "{} skipped rollback (current template already matches revision {to_revision})",
                    display_name(res, &name)
                ),
                Some(patch) => {
                    api.patch(res, ns, &name, PatchType::Merge, &patch, None)
                        .await?;
                    outln!("{} rolled back", display_name(res, &name));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCmd::Pause { names } => set_paused(api, &names, ns, true).await,
        RolloutCmd::Resume { names } => set_paused(api, &names, ns, false).await,
        RolloutCmd::Restart { names } => {
            let (res, name) = workload(&names)?;
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations":
                {"kubectl.kubernetes.io/restartedAt": now}}}}});
            api.patch(res, ns, &name, PatchType::Merge, &patch, None)
                .await?;
            outln!("{} restarted", display_name(res, &name));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn set_paused(
    api: &Api,
    names: &[String],
    ns: Option<&str>,
    paused: bool,
) -> Result<ExitCode> {
    let (res, name) = deployment(names)?;
    let d = must_get(api, res, ns, &name).await?;
    let shown = display_name(res, &name);
    let now = d
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if now == paused {
        bail!(
            "{shown} is {}",
            if paused {
                "already paused"
            } else {
                "not paused"
            }
        );
    }
    let patch = json!({"spec": {"paused": paused}});
    api.patch(res, ns, &name, PatchType::Merge, &patch, None)
        .await?;
    outln!("{shown} {}", if paused { "paused" } else { "resumed" });
    Ok(ExitCode::SUCCESS)
}

async fn must_get(api: &Api, res: &Resource, ns: Option<&str>, name: &str) -> Result<Value> {
    match api.get(res, ns, name).await? {
        Some(d) => Ok(d),
        None => bail!(
            "Error from server (NotFound): {}.{} {name:?} not found",
            res.plural,
            res.group
        ),
    }
}

/// The ReplicaSets `d` controls.
async fn owned_replicasets(api: &Api, ns: Option<&str>, d: &Value) -> Result<Vec<Value>> {
    let rs = resources::by_cli_name("replicasets").expect("replicasets served");
    let (items, _) = api.list(rs, ns, &ListOptions::default()).await?;
    let uid = &d["metadata"]["uid"];
    Ok(items
        .into_iter()
        .filter(|r| {
            r["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|os| {
                    os.iter()
                        .any(|o| o["uid"] == *uid && o["controller"] == true)
                })
        })
        .collect())
}

fn revision(rs: &Value) -> u64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// kubectl's history table: REVISION and CHANGE-CAUSE, oldest first.
pub fn history_table(rss: &[Value]) -> String {
    let mut rows: Vec<(u64, String)> = rss
        .iter()
        .map(|r| {
            let cause = r
                .pointer("/metadata/annotations/kubernetes.io~1change-cause")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            (revision(r), cause.to_string())
        })
        .filter(|(rev, _)| *rev > 0)
        .collect();
    rows.sort();
    let mut out = String::from("REVISION  CHANGE-CAUSE\n");
    for (rev, cause) in rows {
        out.push_str(&format!("{rev:<9} {cause}\n"));
    }
    out
}

/// kubectl's history table for ControllerRevisions: REVISION and
/// CHANGE-CAUSE (the revision's `kubernetes.io/change-cause`), oldest first.
pub fn revisions_table(revs: &[Value]) -> String {
    let mut rows: Vec<(i64, String)> = revs
        .iter()
        .map(|r| {
            let cause = r
                .pointer("/metadata/annotations/kubernetes.io~1change-cause")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            (r["revision"].as_i64().unwrap_or(0), cause.to_string())
        })
        .collect();
    rows.sort();
    let mut out = String::from("REVISION  CHANGE-CAUSE\n");
    for (rev, cause) in rows {
        out.push_str(&format!("{rev:<9} {cause}\n"));
    }
    out
}

/// kubectl's DaemonSet/StatefulSet rollback: the revision number rolled back
/// to (0: the one before the newest) and the strategic merge patch to send —
/// the revision's data — or `None` when the set's template already is that
/// revision's.
pub fn revision_undo(set: &Value, revs: &[Value], to: i64) -> Result<(i64, Option<Value>)> {
    let mut revs: Vec<&Value> = revs.iter().collect();
    revs.sort_by_key(|r| r["revision"].as_i64().unwrap_or(0));
    let target = if to == 0 {
        if revs.len() <= 1 {
            bail!("no last revision to roll back to");
        }
        revs[revs.len() - 2]
    } else {
        match revs.iter().find(|r| r["revision"].as_i64() == Some(to)) {
            Some(r) => *r,
            None => bail!("unable to find specified revision {to} in history"),
        }
    };
    let n = target["revision"].as_i64().unwrap_or(0);
    let data = &target["data"];
    let mut template = data["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    if template.is_null() {
        bail!("revision {n} holds no pod template");
    }
    if template == set["spec"]["template"] {
        return Ok((n, None));
    }
    Ok((n, Some(data.clone())))
}

/// The template without the controller's `pod-template-hash` label.
fn bare_template(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    t
}

/// The patch that rolls `d` back to revision `to` (0: the one before the
/// current); `None` when its template already is that revision's.
pub fn undo_patch(d: &Value, rss: &[Value], to: u64) -> Result<Option<Value>> {
    let mut revs: Vec<(u64, &Value)> = rss.iter().map(|r| (revision(r), r)).collect();
    revs.sort_by_key(|(rev, _)| std::cmp::Reverse(*rev));
    let target = if to == 0 {
        match revs.get(1) {
            Some((_, r)) => *r,
            None => bail!(
                "no rollout history found for deployment {:?}",
                d["metadata"]["name"].as_str().unwrap_or("")
            ),
        }
    } else {
        match revs.iter().find(|(rev, _)| *rev == to) {
            Some((_, r)) => *r,
            None => bail!("unable to find specified revision {to} in history"),
        }
    };
    let template = bare_template(&target["spec"]["template"]);
    if template == bare_template(&d["spec"]["template"]) {
        return Ok(None);
    }
    // The whole template is replaced: a merge patch with every field of the
    // old one, and null for fields the current template has that it lacks.
    let mut patch_template = template.clone();
    null_missing(&d["spec"]["template"], &mut patch_template);
    Ok(Some(json!({"spec": {"template": patch_template}})))
}

/// Sets to null every field of `current` that `target` lacks (a merge
/// patch's way of removing them).
fn null_missing(current: &Value, target: &mut Value) {
    let (Some(c), Some(t)) = (current.as_object(), target.as_object_mut()) else {
        return;
    };
    for (k, v) in c {
        match t.get_mut(k) {
            None => {
                t.insert(k.clone(), Value::Null);
            }
            Some(tv) => null_missing(v, tv),
        }
    }
}

/// Where a Deployment's rollout stands: `Ok(Some(waiting message))`,
/// `Ok(None)` when done, `Err` past its progress deadline (kubectl's words).
pub fn rollout_state(d: &Value) -> Result<Option<String>, String> {
    let name = d["metadata"]["name"].as_str().unwrap_or("");
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = d["status"]["observedGeneration"].as_i64().unwrap_or(0);
    if generation > observed {
        return Ok(Some(
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let n = |f: &str| d["status"][f].as_i64().unwrap_or(0);
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, replicas, available) =
        (n("updatedReplicas"), n("replicas"), n("availableReplicas"));
    let waiting = |m: String| {
        Ok(Some(format!(
            "Waiting for deployment {name:?} rollout to finish: {m}"
        )))
    };
    if updated < want {
        return waiting(format!(
            "{updated} out of {want} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "{available} of {updated} updated replicas are available..."
        ));
    }
    Ok(None)
}

/// Where a DaemonSet's or StatefulSet's rollout stands, as kubectl's status
/// viewers word it: `Ok(Ok(waiting))`, `Ok(Err(done))`, or `Err` when the
/// strategy has no rollout status.
pub fn set_rollout_state(kind: &str, s: &Value) -> Result<Result<String, String>, String> {
    let name = s["metadata"]["name"].as_str().unwrap_or("");
    let generation = s["metadata"]["generation"].as_i64().unwrap_or(0);
    let st = &s["status"];
    let n = |f: &str| st[f].as_i64().unwrap_or(0);
    let strategy = s["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    if kind == "DaemonSet" {
        if generation > n("observedGeneration") {
            return Ok(Ok(
                "Waiting for daemon set spec update to be observed...".into()
            ));
        }
        let desired = n("desiredNumberScheduled");
        let wait = |m: String| {
            Ok(Ok(format!(
                "Waiting for daemon set {name:?} rollout to finish: {m}"
            )))
        };
        if n("updatedNumberScheduled") < desired {
            let u = n("updatedNumberScheduled");
            return wait(format!(
                "{u} out of {desired} new pods have been updated..."
            ));
        }
        if n("numberAvailable") < desired {
            let a = n("numberAvailable");
            return wait(format!("{a} of {desired} updated pods are available..."));
        }
        return Ok(Err(format!("daemon set {name:?} successfully rolled out")));
    }
    if n("observedGeneration") == 0 || generation > n("observedGeneration") {
        return Ok(Ok(
            "Waiting for statefulset spec update to be observed...".into()
        ));
    }
    let replicas = s["spec"]["replicas"].as_i64().unwrap_or(1);
    if n("readyReplicas") < replicas {
        return Ok(Ok(format!(
            "Waiting for {} pods to be ready...",
            replicas - n("readyReplicas")
        )));
    }
    let updated = n("updatedReplicas");
    if let Some(ru) = s["spec"]["updateStrategy"]["rollingUpdate"].as_object() {
        if let Some(partition) = ru.get("partition").and_then(Value::as_i64) {
            if updated < replicas - partition {
                return Ok(Ok(format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                )));
            }
        }
        return Ok(Err(format!(
            "partitioned roll out complete: {updated} new pods have been updated..."
        )));
    }
    let rev = |f: &str| st[f].as_str().unwrap_or("").to_string();
    if rev("updateRevision") != rev("currentRevision") {
        return Ok(Ok(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
            rev("updateRevision")
        )));
    }
    Ok(Err(format!(
        "statefulset rolling update complete {} pods at revision {}...",
        n("currentReplicas"),
        rev("currentRevision")
    )))
}

async fn status(
    api: &Api,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    timeout: u64,
    watch: bool,
) -> Result<ExitCode> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let d = must_get(api, res, ns, name).await?;
        let state = match res.kind {
            "Deployment" => rollout_state(&d)
                .map(|s| s.ok_or_else(|| format!("deployment {name:?} successfully rolled out"))),
            kind => set_rollout_state(kind, &d),
        };
        match state {
            Err(e) => bail!("{e}"),
            Ok(Err(done)) => {
                outln!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(Ok(m)) => {
                if m != last {
                    outln!("{m}");
                    last = m;
                }
                if !watch {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        if timeout > 0 && start.elapsed() > Duration::from_secs(timeout) {
            bail!("timed out waiting for the condition");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(rev: &str, env: Option<&str>, cause: Option<&str>) -> Value {
        let mut r = json!({"metadata": {"annotations": {REVISION: rev}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{rev}")}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        if let Some(e) = env {
            r["spec"]["template"]["spec"]["containers"][0]["env"] =
                json!([{"name": "V", "value": e}]);
        }
        if let Some(c) = cause {
            r["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!(c);
        }
        r
    }

    #[test]
    fn history_lists_revisions_oldest_first_with_their_causes() {
        let t = history_table(&[rs("2", Some("2"), Some("set env")), rs("1", None, None)]);
        assert_eq!(
            t,
            "REVISION  CHANGE-CAUSE\n1         <none>\n2         set env\n"
        );
    }

    #[test]
    fn undo_puts_the_previous_template_back_and_removes_what_it_lacked() {
        let rss = [rs("1", None, None), rs("2", Some("2"), None)];
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": rss[1]["spec"]["template"].clone()}});
        d["spec"]["template"]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("pod-template-hash");
        let p = undo_patch(&d, &rss, 0).unwrap().expect("a patch");
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"][0]["env"],
            Value::Null
        );
        assert!(p["spec"]["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none());
        assert!(
            undo_patch(&d, &rss, 2).unwrap().is_none(),
            "already at revision 2"
        );
        let e = undo_patch(&d, &rss, 7).unwrap_err().to_string();
        assert_eq!(e, "unable to find specified revision 7 in history");
    }

    /// A ControllerRevision `n` of image `image`.
    fn cr(n: i64, image: &str, cause: Option<&str>) -> Value {
        let mut r = json!({"metadata": {"name": format!("agent-{n}")}, "revision": n,
            "data": {"spec": {"template": {"$patch": "replace",
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}}});
        if let Some(c) = cause {
            r["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": c});
        }
        r
    }

    #[test]
    fn daemonset_history_and_undo_use_controller_revisions() {
        let revs = [
            cr(3, "agent:3", Some("set image")),
            cr(1, "agent:1", None),
            cr(2, "agent:2", None),
        ];
        assert_eq!(
            revisions_table(&revs),
            "REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n3         set image\n"
        );
        let set = json!({"spec": {"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "c", "image": "agent:3"}]}}}});
        // The previous revision is the second newest; the patch is its data.
        let (n, patch) = revision_undo(&set, &revs, 0).unwrap();
        assert_eq!(n, 2);
        assert_eq!(patch.unwrap(), revs[2]["data"]);
        assert_eq!(
            revision_undo(&set, &revs, 1).unwrap().1,
            Some(revs[1]["data"].clone())
        );
        assert_eq!(revision_undo(&set, &revs, 3).unwrap(), (3, None));
        let e = revision_undo(&set, &revs, 7).unwrap_err().to_string();
        assert_eq!(e, "unable to find specified revision 7 in history");
        let e = revision_undo(&set, &revs[..1], 0).unwrap_err().to_string();
        assert_eq!(e, "no last revision to roll back to");
    }

    #[test]
    fn set_status_reads_as_kubectl_reads_it() {
        let ds = |gen: i64, st: Value| json!({"metadata": {"name": "agent", "generation": gen}, "spec": {}, "status": st});
        let sts = |spec: Value, st: Value| {
            let mut s = json!({"metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 3}, "status": st});
            for (k, v) in spec.as_object().unwrap() {
                s["spec"][k] = v.clone();
            }
            s
        };
        let wait = |m: &str| Ok(Ok(m.to_string()));
        let done = |m: &str| Ok(Err(m.to_string()));
        let cases = [
            ("DaemonSet", ds(2, json!({"observedGeneration": 1})), wait("Waiting for daemon set spec update to be observed...")),
            ("DaemonSet", ds(1, json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1})),
             wait("Waiting for daemon set \"agent\" rollout to finish: 1 out of 2 new pods have been updated...")),
            ("DaemonSet", ds(1, json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1})),
             wait("Waiting for daemon set \"agent\" rollout to finish: 1 of 2 updated pods are available...")),
            ("DaemonSet", ds(1, json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2})),
             done("daemon set \"agent\" successfully rolled out")),
            ("DaemonSet", json!({"metadata": {"name": "agent"}, "spec": {"updateStrategy": {"type": "OnDelete"}}}),
             Err("rollout status is only available for RollingUpdate strategy type".to_string())),
            ("StatefulSet", sts(json!({}), json!({})), wait("Waiting for statefulset spec update to be observed...")),
            ("StatefulSet", sts(json!({}), json!({"observedGeneration": 1, "readyReplicas": 1})), wait("Waiting for 2 pods to be ready...")),
            ("StatefulSet", sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1})),
             wait("Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...")),
            ("StatefulSet", sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 2})),
             done("partitioned roll out complete: 2 new pods have been updated...")),
            ("StatefulSet", sts(json!({}), json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1,
                "currentRevision": "db-a", "updateRevision": "db-b"})),
             wait("waiting for statefulset rolling update to complete 1 pods at revision db-b...")),
            ("StatefulSet", sts(json!({}), json!({"observedGeneration": 1, "readyReplicas": 3, "currentReplicas": 3,
                "currentRevision": "db-b", "updateRevision": "db-b"})),
             done("statefulset rolling update complete 3 pods at revision db-b...")),
        ];
        for (kind, obj, want) in cases {
            assert_eq!(set_rollout_state(kind, &obj), want, "{obj}");
        }
    }

    #[test]
    fn status_reads_as_kubectl_reads_it() {
        let d = |gen: i64, obs: i64, st: Value| {
            let mut s = st;
            s["observedGeneration"] = json!(obs);
            json!({"metadata": {"name": "web", "generation": gen}, "spec": {"replicas": 4}, "status": s})
        };
        let cases = [
            (d(2, 1, json!({})), Ok(Some("Waiting for deployment spec update to be observed...".to_string()))),
            (d(1, 1, json!({"updatedReplicas": 2, "replicas": 5})),
             Ok(Some("Waiting for deployment \"web\" rollout to finish: 2 out of 4 new replicas have been updated...".into()))),
            (d(1, 1, json!({"updatedReplicas": 4, "replicas": 5})),
             Ok(Some("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into()))),
            (d(1, 1, json!({"updatedReplicas": 4, "replicas": 4, "availableReplicas": 3})),
             Ok(Some("Waiting for deployment \"web\" rollout to finish: 3 of 4 updated replicas are available...".into()))),
            (d(1, 1, json!({"updatedReplicas": 4, "replicas": 4, "availableReplicas": 4})), Ok(None)),
            (d(1, 1, json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})),
             Err("deployment \"web\" exceeded its progress deadline".to_string())),
        ];
        for (dep, want) in cases {
            assert_eq!(rollout_state(&dep), want, "{dep}");
        }
    }
}
