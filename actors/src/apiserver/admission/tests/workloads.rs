//! Deployment, ReplicaSet, ReplicationController, StatefulSet, DaemonSet, Job, CronJob.

use serde_json::{json, Value};

use super::{expect_invalid, ok, refuse_all, update, with};

fn template(restart: Option<&str>) -> Value {
    let mut t = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}
    });
    if let Some(r) = restart {
        t["spec"]["restartPolicy"] = json!(r);
    }
    t
}

fn workload(api: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api, "kind": kind,
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(None)}
    })
}

fn deployment() -> Value {
    workload("apps/v1", "Deployment")
}

fn job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"template": template(Some("Never"))}
    })
}

fn cron_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template(Some("OnFailure"))}}}
    })
}

#[test]
fn defaults() {
    let d = ok("Deployment", &deployment());
    let s = &d["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(
        s["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(
        (
            s["revisionHistoryLimit"].as_i64(),
            s["progressDeadlineSeconds"].as_i64()
        ),
        (Some(10), Some(600))
    );
    let ps = &s["template"]["spec"];
    assert_eq!(
        (ps["restartPolicy"].as_str(), ps["dnsPolicy"].as_str()),
        (Some("Always"), Some("ClusterFirst"))
    );
    assert_eq!(ps["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(d.get("status").is_none(), "no pod status on templates");

    let rs = ok("ReplicaSet", &workload("apps/v1", "ReplicaSet"));
    assert_eq!(rs["spec"]["replicas"], 1);
    assert_eq!(
        rs["spec"]["template"]["spec"]["schedulerName"],
        "default-scheduler"
    );

    let sts = ok("StatefulSet", &workload("apps/v1", "StatefulSet"));
    let s = &sts["spec"];
    assert_eq!(
        (s["replicas"].as_i64(), s["podManagementPolicy"].as_str()),
        (Some(1), Some("OrderedReady"))
    );
    assert_eq!(
        s["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(s["revisionHistoryLimit"], 10);

    let ds = ok("DaemonSet", &workload("apps/v1", "DaemonSet"));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let j = ok("Job", &job());
    let s = &j["spec"];
    assert_eq!(
        (
            s["completions"].as_i64(),
            s["parallelism"].as_i64(),
            s["backoffLimit"].as_i64()
        ),
        (Some(1), Some(1), Some(6))
    );
    assert_eq!(s["completionMode"], "NonIndexed");
    assert_eq!(
        (
            &j["metadata"]["labels"]["app"],
            &j["metadata"]["labels"]["job-name"]
        ),
        (&json!("web"), &json!("pi")),
        "labels from the template"
    );
    // As the registry generates them (`kubectl create job` sends neither):
    // the pods' labels, a selector on the Job's uid, the Job's own labels.
    let bare = with(
        &with(&job(), "/spec/template/metadata", json!({})),
        "/metadata/uid",
        json!("u-1"),
    );
    let g = ok("Job", &bare);
    let generated = json!({
        "batch.kubernetes.io/controller-uid": "u-1", "controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"
    });
    assert_eq!(g["spec"]["template"]["metadata"]["labels"], generated);
    assert_eq!(
        g["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(
        g["metadata"]["labels"], generated,
        "labels from the template"
    );
    let manual = with(&bare, "/spec/manualSelector", json!(true));
    let manual = with(
        &manual,
        "/spec/selector",
        json!({"matchLabels": {"a": "b"}}),
    );
    let manual = with(
        &manual,
        "/spec/template/metadata",
        json!({"labels": {"a": "b"}}),
    );
    let m = ok("Job", &manual);
    assert_eq!(m["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
    assert_eq!(
        m["spec"]["template"]["metadata"]["labels"],
        json!({"a": "b"})
    );
    let par = ok("Job", &with(&job(), "/spec/parallelism", json!(3)));
    assert!(
        par["spec"].get("completions").is_none(),
        "completions stays unset with parallelism"
    );

    let c = ok("CronJob", &cron_job());
    let s = &c["spec"];
    assert_eq!(
        (s["concurrencyPolicy"].as_str(), s["suspend"].as_bool()),
        (Some("Allow"), Some(false))
    );
    assert_eq!(
        (
            s["successfulJobsHistoryLimit"].as_i64(),
            s["failedJobsHistoryLimit"].as_i64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        s["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
}

/// Cases every apps/v1 workload shares.
fn apps_cases() -> Vec<super::Case> {
    vec![
        ("/spec/selector", json!(null), "spec.selector", "Required value"),
        ("/spec/selector", json!({"matchLabels": {"app": "other"}}), "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"),
        ("/spec/selector", json!({"matchExpressions": [{"key": "app", "operator": "In"}]}), "spec.selector.matchExpressions[0].values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        ("/spec/selector", json!({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["web"]}]}), "spec.selector.matchExpressions[0].operator", "not a valid selector operator"),
        ("/spec/template/spec/restartPolicy", json!("Never"), "spec.template.spec.restartPolicy", "Unsupported value: \"Never\": supported values: \"Always\""),
        ("/spec/template/spec/restartPolicy", json!("Sometimes"), "spec.template.spec.restartPolicy", "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        ("/spec/template/spec/containers/0/image", json!(""), "spec.template.spec.containers[0].image", "Required value"),
        ("/spec/template/metadata/labels/bad key", json!("x"), "spec.template.metadata.labels", "name part must consist of"),
        ("/spec/minReadySeconds", json!(-1), "spec.minReadySeconds", "must be greater than or equal to 0"),
    ]
}

#[test]
fn deployment_refused() {
    let mut cases = apps_cases();
    cases.extend([
        (
            "/spec/replicas",
            json!(-1),
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "/spec/strategy",
            json!({"type": "Blue"}),
            "spec.strategy.type",
            "Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\"",
        ),
        (
            "/spec/strategy",
            json!({"type": "Recreate", "rollingUpdate": {}}),
            "spec.strategy.rollingUpdate",
            "Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
        (
            "/spec/strategy",
            json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}),
            "spec.strategy.rollingUpdate.maxUnavailable",
            "may not be 0 when `maxSurge` is 0",
        ),
        (
            "/spec/strategy",
            json!({"rollingUpdate": {"maxSurge": "150%"}}),
            "spec.strategy.rollingUpdate.maxSurge",
            "must not be greater than 100%",
        ),
        (
            "/spec/strategy",
            json!({"rollingUpdate": {"maxSurge": "lots"}}),
            "spec.strategy.rollingUpdate.maxSurge",
            "a valid percent string",
        ),
        (
            "/spec/progressDeadlineSeconds",
            json!(5),
            "spec.progressDeadlineSeconds",
            "must be greater than minReadySeconds",
        ),
        (
            "/spec/revisionHistoryLimit",
            json!(-3),
            "spec.revisionHistoryLimit",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/template/spec/activeDeadlineSeconds",
            json!(10),
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in Deployment is not Supported",
        ),
    ]);
    let base = with(&deployment(), "/spec/minReadySeconds", json!(10));
    refuse_all("Deployment", &base, cases);
    let s = super::create(
        "Deployment",
        &with(&deployment(), "/spec/replicas", json!(-1)),
    )
    .unwrap_err();
    assert_eq!(
        s.message,
        "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
}

#[test]
fn replica_set_daemon_set_stateful_set_refused() {
    let mut rs = apps_cases();
    rs.push((
        "/spec/replicas",
        json!(-2),
        "spec.replicas",
        "must be greater than or equal to 0",
    ));
    refuse_all("ReplicaSet", &workload("apps/v1", "ReplicaSet"), rs);

    let mut ds = apps_cases();
    ds.extend([
        (
            "/spec/updateStrategy",
            json!({"type": "Surge"}),
            "spec.updateStrategy.type",
            "Unsupported value: \"Surge\"",
        ),
        (
            "/spec/updateStrategy",
            json!({"rollingUpdate": {"maxUnavailable": 0}}),
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "may not be 0 when `maxSurge` is 0",
        ),
    ]);
    refuse_all("DaemonSet", &workload("apps/v1", "DaemonSet"), ds);

    let mut sts = apps_cases();
    sts.extend([
        (
            "/spec/replicas",
            json!(-1),
            "spec.replicas",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/podManagementPolicy",
            json!("Random"),
            "spec.podManagementPolicy",
            "must be 'OrderedReady' or 'Parallel'",
        ),
        (
            "/spec/updateStrategy",
            json!({"type": "Canary"}),
            "spec.updateStrategy",
            "must be 'RollingUpdate' or 'OnDelete'",
        ),
        (
            "/spec/updateStrategy",
            json!({"rollingUpdate": {"partition": -1}}),
            "spec.updateStrategy.rollingUpdate.partition",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Shred"}),
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
            "Unsupported value: \"Shred\": supported values: \"Retain\", \"Delete\"",
        ),
        (
            "/spec/persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "delete"}),
            "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
            "Unsupported value: \"delete\": supported values: \"Retain\", \"Delete\"",
        ),
        (
            "/spec/serviceName",
            json!("1web"),
            "spec.serviceName",
            "a DNS-1035 label",
        ),
        (
            "/spec/volumeClaimTemplates",
            json!([{"metadata": {}}]),
            "spec.volumeClaimTemplates[0].metadata.name",
            "Required value",
        ),
    ]);
    refuse_all("StatefulSet", &workload("apps/v1", "StatefulSet"), sts);
}

#[test]
fn job_and_cron_job_refused() {
    let job_cases = vec![
        (
            "/spec/template/spec/restartPolicy",
            json!(null),
            "spec.template.spec.restartPolicy",
            "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ),
        (
            "/spec/completions",
            json!(-1),
            "spec.completions",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/parallelism",
            json!(-1),
            "spec.parallelism",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/backoffLimit",
            json!(-1),
            "spec.backoffLimit",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/completionMode",
            json!("Sorted"),
            "spec.completionMode",
            "Unsupported value: \"Sorted\": supported values: \"NonIndexed\", \"Indexed\"",
        ),
        (
            "/spec/selector",
            json!({"matchLabels": {"app": "db"}}),
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ),
        (
            "/spec/template/spec/containers/0/name",
            json!("Pi"),
            "spec.template.spec.containers[0].name",
            "a lowercase RFC 1123 label",
        ),
    ];
    refuse_all("Job", &job(), job_cases);
    let indexed = with(
        &with(&job(), "/spec/completionMode", json!("Indexed")),
        "/spec/parallelism",
        json!(2),
    );
    expect_invalid(
        "Job",
        super::create("Job", &indexed),
        "spec.completions",
        "Required value: when completion mode is Indexed",
        "indexed",
    );

    let cron_cases = vec![
        ("/spec/schedule", json!(""), "spec.schedule", "Required value"),
        ("/spec/schedule", json!("every minute"), "spec.schedule", "Invalid value: \"every minute\": expected exactly 5 fields, found 2: every minute"),
        ("/spec/schedule", json!("61 * * * *"), "spec.schedule", "end of range (61) above maximum (59)"),
        ("/spec/schedule", json!("TZ=UTC 0 * * * *"), "spec.schedule", "cannot use TZ or CRON_TZ in schedule"),
        ("/spec/timeZone", json!("Local"), "spec.timeZone", "timeZone must be an explicit time zone"),
        ("/spec/concurrencyPolicy", json!("Sometimes"), "spec.concurrencyPolicy", "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
        ("/spec/successfulJobsHistoryLimit", json!(-1), "spec.successfulJobsHistoryLimit", "must be greater than or equal to 0"),
        ("/spec/startingDeadlineSeconds", json!(-1), "spec.startingDeadlineSeconds", "must be greater than or equal to 0"),
        ("/spec/jobTemplate/spec/template/spec/restartPolicy", json!("Always"), "spec.jobTemplate.spec.template.spec.restartPolicy", "supported values: \"OnFailure\", \"Never\""),
        ("/spec/jobTemplate/spec/backoffLimit", json!(-1), "spec.jobTemplate.spec.backoffLimit", "must be greater than or equal to 0"),
        ("/metadata/name", json!("a".repeat(53)), "metadata.name", "must be no more than 52 characters"),
    ];
    refuse_all("CronJob", &cron_job(), cron_cases);
    ok(
        "CronJob",
        &with(&cron_job(), "/spec/schedule", json!("@hourly")),
    );
}

#[test]
fn update_rules() {
    let other_sel = |v: &Value| {
        let v = with(
            v,
            "/spec/selector",
            json!({"matchLabels": {"app": "web", "tier": "fe"}}),
        );
        with(&v, "/spec/template/metadata/labels/tier", json!("fe"))
    };
    for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
        let base = workload("apps/v1", kind);
        let scaled = with(
            &base,
            "/spec/template/spec/containers/0/image",
            json!("nginx:1.26"),
        );
        update(kind, &base, &scaled).unwrap_or_else(|s| panic!("{kind}: {}", s.message));
        expect_invalid(
            kind,
            update(kind, &base, &other_sel(&base)),
            "spec.selector",
            "field is immutable",
            kind,
        );
    }
    let sts = workload("apps/v1", "StatefulSet");
    let scaled = with(
        &with(&sts, "/spec/replicas", json!(5)),
        "/spec/template/spec/containers/0/image",
        json!("nginx:2"),
    );
    update("StatefulSet", &sts, &scaled).unwrap_or_else(|s| panic!("{}", s.message));
    let forbidden = "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
    for (ptr, v) in [
        ("/spec/serviceName", json!("other")),
        ("/spec/podManagementPolicy", json!("Parallel")),
        (
            "/spec/volumeClaimTemplates",
            json!([{"metadata": {"name": "data"}}]),
        ),
    ] {
        expect_invalid(
            "StatefulSet",
            update("StatefulSet", &sts, &with(&sts, ptr, v)),
            "spec",
            forbidden,
            ptr,
        );
    }
    expect_invalid(
        "StatefulSet",
        update("StatefulSet", &sts, &other_sel(&sts)),
        "spec",
        forbidden,
        "selector",
    );

    let j = with(
        &job(),
        "/spec/selector",
        json!({"matchLabels": {"app": "web"}}),
    );
    // As stored: with the generated labels (kubectl updates what it read).
    let j = ok("Job", &with(&j, "/spec/manualSelector", json!(true)));
    let suspended = with(&j, "/spec/suspend", json!(true));
    update("Job", &j, &suspended).unwrap_or_else(|s| panic!("{}", s.message));
    // A replacement that leaves the (registry-generated) selector out keeps it.
    let kept = update("Job", &j, &with(&suspended, "/spec/selector", json!(null))).unwrap();
    assert_eq!(
        kept["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let new_image = with(
        &j,
        "/spec/template/spec/containers/0/image",
        json!("perl:5"),
    );
    expect_invalid(
        "Job",
        update("Job", &j, &new_image),
        "spec.template",
        "field is immutable",
        "template",
    );
    expect_invalid(
        "Job",
        update("Job", &j, &other_sel(&j)),
        "spec.selector",
        "field is immutable",
        "selector",
    );
}

fn hpa() -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5}
    })
}

#[test]
fn autoscalers_default_and_validate_as_kubernetes() {
    let h = ok("HorizontalPodAutoscaler", &hpa());
    assert_eq!(h["spec"]["minReplicas"], 1);
    assert_eq!(
        h["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert!(
        h["spec"].get("behavior").is_none(),
        "behavior only when given"
    );
    let b = ok(
        "HorizontalPodAutoscaler",
        &with(
            &hpa(),
            "/spec/behavior",
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}}),
        ),
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    assert_eq!(b["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
    assert_eq!(
        b["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        0
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleUp"]["policies"],
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
    refuse_all(
        "HorizontalPodAutoscaler",
        &hpa(),
        vec![
            (
                "/spec/maxReplicas",
                json!(0),
                "spec.maxReplicas",
                "must be greater than 0",
            ),
            (
                "/spec/minReplicas",
                json!(6),
                "spec.maxReplicas",
                "must be greater than or equal to `minReplicas`",
            ),
            (
                "/spec/minReplicas",
                json!(0),
                "spec.minReplicas",
                "must be greater than or equal to 1",
            ),
            (
                "/spec/scaleTargetRef/name",
                json!(""),
                "spec.scaleTargetRef.name",
                "Required value",
            ),
            (
                "/spec/metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]),
                "spec.metrics[0].resource.target.averageUtilization",
                "must be greater than 0",
            ),
            (
                "/spec/metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Percent"}}}]),
                "spec.metrics[0].resource.target.type",
                "Unsupported value",
            ),
            (
                "/spec/behavior",
                json!({"scaleDown": {"stabilizationWindowSeconds": 3601}}),
                "spec.behavior.scaleDown.stabilizationWindowSeconds",
                "must be less than or equal to 3600",
            ),
        ],
    );
}

#[test]
fn controller_revisions() {
    let rev = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "agent-5d8f", "namespace": "default"},
        "data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}},
        "revision": 1
    });
    refuse_all(
        "ControllerRevision",
        &rev,
        vec![
            (
                "/data",
                Value::Null,
                "data",
                "Required value: data is mandatory",
            ),
            (
                "/revision",
                json!(-1),
                "revision",
                "must be greater than or equal to 0",
            ),
            (
                "/metadata/name",
                json!("Agent_1"),
                "metadata.name",
                "Invalid value",
            ),
        ],
    );
    // The revision number may change; the data may not.
    let renumbered = with(&rev, "/revision", json!(3));
    assert_eq!(
        update("ControllerRevision", &rev, &renumbered).unwrap()["revision"],
        3
    );
    let changed = with(&rev, "/data", json!({"spec": {}}));
    expect_invalid(
        "ControllerRevision",
        update("ControllerRevision", &rev, &changed),
        "data",
        "field is immutable",
        "data changed",
    );
}

/// `ValidatePodTemplateSpec`: a template with ephemeral containers is refused
/// in every kind that carries one, in Kubernetes' words; an empty list is not.
#[test]
fn pod_templates_refuse_ephemeral_containers() {
    let debug = json!([{"name": "debug", "image": "busybox:1.36"}]);
    let cases = [
        (
            "Deployment",
            deployment(),
            "/spec/template",
            "spec.template.spec.ephemeralContainers",
            "Deployment.apps \"web\"",
        ),
        (
            "ReplicaSet",
            workload("apps/v1", "ReplicaSet"),
            "/spec/template",
            "spec.template.spec.ephemeralContainers",
            "ReplicaSet.apps \"web\"",
        ),
        (
            "DaemonSet",
            workload("apps/v1", "DaemonSet"),
            "/spec/template",
            "spec.template.spec.ephemeralContainers",
            "DaemonSet.apps \"web\"",
        ),
        (
            "StatefulSet",
            with(
                &workload("apps/v1", "StatefulSet"),
                "/spec/serviceName",
                json!("web"),
            ),
            "/spec/template",
            "spec.template.spec.ephemeralContainers",
            "StatefulSet.apps \"web\"",
        ),
        (
            "Job",
            job(),
            "/spec/template",
            "spec.template.spec.ephemeralContainers",
            "Job.batch \"pi\"",
        ),
        (
            "CronJob",
            cron_job(),
            "/spec/jobTemplate/spec/template",
            "spec.jobTemplate.spec.template.spec.ephemeralContainers",
            "CronJob.batch \"tick\"",
        ),
    ];
    for (kind, base, template, field, name) in cases {
        let ptr = format!("{template}/spec/ephemeralContainers");
        ok(kind, &with(&base, &ptr, json!([])));
        let s = super::create(kind, &with(&base, &ptr, debug.clone())).unwrap_err();
        assert_eq!(s.code, 422, "{kind}: {}", s.message);
        assert_eq!(
            s.message,
            format!("{name} is invalid: {field}: Forbidden: ephemeral containers not allowed in pod template"),
            "{kind}"
        );
        // An update that adds one is refused the same way.
        let s = update(kind, &base, &with(&base, &ptr, debug.clone())).unwrap_err();
        assert!(
            s.message.contains(&format!(
                "{field}: Forbidden: ephemeral containers not allowed in pod template"
            )),
            "{kind} update: {}",
            s.message
        );
    }
}

fn replication_controller() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": template(None)}
    })
}

#[test]
fn replication_controllers_default_their_selector_and_labels_from_the_template() {
    let rc = ok("ReplicationController", &replication_controller());
    assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(rc["spec"]["replicas"], 1);
    assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
    // A selector or labels given are kept.
    let given = with(
        &with(
            &replication_controller(),
            "/spec/selector",
            json!({"app": "web"}),
        ),
        "/metadata/labels",
        json!({"team": "shop"}),
    );
    let rc = ok("ReplicationController", &given);
    assert_eq!(rc["metadata"]["labels"], json!({"team": "shop"}));
    // Its selector may change, unlike a ReplicaSet's.
    let mut relabelled = with(&rc, "/spec/selector", json!({"tier": "front"}));
    relabelled["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
    update("ReplicationController", &given, &relabelled).expect("selector changed");
}

#[test]
fn replication_controllers_refused_as_kubernetes_refuses_them() {
    let cases = vec![
        (
            "/spec/selector",
            json!({"app": "other"}),
            "spec.template.metadata.labels",
            "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ),
        (
            "/spec/replicas",
            json!(-1),
            "spec.replicas",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/minReadySeconds",
            json!(-1),
            "spec.minReadySeconds",
            "must be greater than or equal to 0",
        ),
        (
            "/spec/template/spec/restartPolicy",
            json!("Never"),
            "spec.template.spec.restartPolicy",
            "Unsupported value: \"Never\"",
        ),
        (
            "/spec/template/spec/activeDeadlineSeconds",
            json!(10),
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ),
        ("/spec/template", json!(null), "spec.template", "Required value"),
        (
            "/spec/template/metadata/labels",
            json!(null),
            "spec.selector",
            "Required value",
        ),
    ];
    refuse_all("ReplicationController", &replication_controller(), cases);
    let bad = with(
        &replication_controller(),
        "/spec/selector",
        json!({"app": "other"}),
    );
    let s = super::create("ReplicationController", &bad).unwrap_err();
    assert_eq!(
        s.message,
        "ReplicationController \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
    );
}
