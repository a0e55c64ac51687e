//! Pods: defaults, QoS, validation, update rules.

use ferry_api::object::Status;
use serde_json::{json, Value};

use super::{create, expect_invalid, ok, refuse_all, update, with};

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "env": [{"name": "MODE", "value": "prod"}],
                "readinessProbe": {"httpGet": {"port": 80}}
            }],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]
        }
    })
}

#[test]
fn defaults() {
    let p = ok("Pod", &pod());
    let s = &p["spec"];
    assert_eq!(s["restartPolicy"], "Always");
    assert_eq!(s["dnsPolicy"], "ClusterFirst");
    assert_eq!(s["schedulerName"], "default-scheduler");
    assert_eq!(s["terminationGracePeriodSeconds"], 30);
    assert_eq!(s["securityContext"], json!({}));
    assert_eq!(s["enableServiceLinks"], true);
    let c = &s["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"], json!({}));
    let probe = &c["readinessProbe"];
    assert_eq!(
        (
            probe["timeoutSeconds"].as_i64(),
            probe["periodSeconds"].as_i64()
        ),
        (Some(1), Some(10))
    );
    assert_eq!(probe["httpGet"]["scheme"], "HTTP");
    assert_eq!(s["volumes"][1]["configMap"]["defaultMode"], 420);
    // A projected token lives an hour unless it says otherwise.
    let projected = ok(
        "Pod",
        &with(
            &pod(),
            "/spec/volumes/1",
            json!({"name": "x", "projected": {"sources": [
                {"serviceAccountToken": {"path": "t"}},
                {"serviceAccountToken": {"path": "u", "expirationSeconds": 7200}}]}}),
        ),
    );
    let sources = &projected["spec"]["volumes"][1]["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3600);
    assert_eq!(sources[1]["serviceAccountToken"]["expirationSeconds"], 7200);
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    let tagged = ok(
        "Pod",
        &with(&pod(), "/spec/containers/0/image", json!("nginx:1.25")),
    );
    assert_eq!(
        tagged["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let host = ok("Pod", &with(&pod(), "/spec/hostNetwork", json!(true)));
    assert_eq!(host["spec"]["containers"][0]["ports"][0]["hostPort"], 80);
    // A user-set value is kept.
    let never = ok(
        "Pod",
        &with(&pod(), "/spec/containers/0/imagePullPolicy", json!("Never")),
    );
    assert_eq!(never["spec"]["containers"][0]["imagePullPolicy"], "Never");
}

#[test]
fn qos_classes() {
    let res = |r: Value| with(&pod(), "/spec/containers/0/resources", r);
    let cases = [
        (json!({}), "BestEffort"),
        (json!({"requests": {"cpu": "100m"}}), "Burstable"),
        (
            json!({"limits": {"cpu": "1", "memory": "128Mi"}}),
            "Guaranteed",
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "1000m", "memory": "0.125Gi"}}),
            "Guaranteed",
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "500m"}}),
            "Burstable",
        ),
        (json!({"limits": {"cpu": "1"}}), "Burstable"),
    ];
    for (r, want) in cases {
        let p = ok("Pod", &res(r.clone()));
        assert_eq!(p["status"]["qosClass"], want, "{r}");
    }
    // Requests default to limits.
    let p = ok(
        "Pod",
        &res(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
    );
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
}

#[test]
fn refused() {
    let cases = vec![
        ("/metadata/name", json!(null), "metadata.name", "Required value: name or generateName is required"),
        ("/metadata/name", json!("Web_1"), "metadata.name", "Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"),
        ("/metadata/namespace", json!("Bad.NS"), "metadata.namespace", "Invalid value: \"Bad.NS\""),
        ("/metadata/labels", json!({"a b": "x"}), "metadata.labels", "Invalid value: \"a b\": name part must consist of"),
        ("/metadata/labels", json!({"app": "-x"}), "metadata.labels", "a valid label must be an empty string"),
        ("/metadata/labels", json!({"/x": "y"}), "metadata.labels", "prefix part must be non-empty"),
        ("/metadata/annotations", json!({"x": "y".repeat(256 * 1024)}), "metadata.annotations", "Too long: may not be more than 262144 bytes"),
        ("/metadata/annotations", json!({"a/b/c": "x"}), "metadata.annotations", "a qualified name must consist of"),
        ("/metadata/ownerReferences", json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1"}]), "metadata.ownerReferences[0].uid", "Required value"),
        ("/spec/containers", json!([]), "spec.containers", "Required value"),
        ("/spec/restartPolicy", json!("Sometimes"), "spec.restartPolicy", "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        ("/spec/dnsPolicy", json!("Magic"), "spec.dnsPolicy", "Unsupported value: \"Magic\""),
        ("/spec/terminationGracePeriodSeconds", json!(-1), "spec.terminationGracePeriodSeconds", "Invalid value: -1: must be greater than or equal to 0"),
        ("/spec/activeDeadlineSeconds", json!(0), "spec.activeDeadlineSeconds", "must be between 1 and 2147483647, inclusive"),
        ("/spec/containers/0/image", json!(null), "spec.containers[0].image", "Required value"),
        ("/spec/containers/0/image", json!(" nginx"), "spec.containers[0].image", "must not have leading or trailing whitespace"),
        ("/spec/containers/0/name", json!("Web"), "spec.containers[0].name", "a lowercase RFC 1123 label"),
        ("/spec/containers/0/name", json!(""), "spec.containers[0].name", "Required value"),
        ("/spec/containers/0/imagePullPolicy", json!("Sometimes"), "spec.containers[0].imagePullPolicy", "supported values: \"Always\", \"IfNotPresent\", \"Never\""),
        ("/spec/containers/0/ports/0/containerPort", json!(70000), "spec.containers[0].ports[0].containerPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
        ("/spec/containers/0/ports/0/containerPort", json!(0), "spec.containers[0].ports[0].containerPort", "Required value"),
        ("/spec/containers/0/ports/0/hostPort", json!(-5), "spec.containers[0].ports[0].hostPort", "must be between 1 and 65535"),
        ("/spec/containers/0/ports/0/protocol", json!("HTTP"), "spec.containers[0].ports[0].protocol", "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
        ("/spec/containers/0/ports/0/name", json!("my--very-long-port"), "spec.containers[0].ports[0].name", "must be no more than 15 characters"),
        ("/spec/containers/0/ports/1", json!({"containerPort": 81, "name": "http"}), "spec.containers[0].ports[1].name", "Duplicate value: \"http\""),
        ("/spec/containers/0/volumeMounts/0/name", json!("missing"), "spec.containers[0].volumeMounts[0].name", "Not found: \"missing\""),
        ("/spec/containers/0/volumeMounts/1", json!({"name": "cfg", "mountPath": "/data"}), "spec.containers[0].volumeMounts[1].mountPath", "must be unique"),
        ("/spec/containers/0/env/0/name", json!("A=B"), "spec.containers[0].env[0].name", "a valid environment variable name"),
        ("/spec/containers/0/env/0/name", json!(""), "spec.containers[0].env[0].name", "Required value"),
        ("/spec/containers/0/env/1", json!({"name": "X", "value": "y", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}), "spec.containers[0].env[1].valueFrom", "may not be specified when `value` is not empty"),
        ("/spec/containers/0/resources", json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}), "spec.containers[0].resources.requests[cpu]", "Invalid value: \"2\": must be less than or equal to cpu limit of 1"),
        ("/spec/containers/0/resources", json!({"requests": {"memory": "lots"}}), "spec.containers[0].resources.requests[memory]", "quantities must match the regular expression"),
        ("/spec/containers/0/resources", json!({"limits": {"cpu": "-1"}}), "spec.containers[0].resources.limits[cpu]", "must be greater than or equal to 0"),
        ("/spec/containers/0/resources", json!({"limits": {"gpus": "1"}}), "spec.containers[0].resources.limits[gpus]", "must be a standard resource type or fully qualified"),
        ("/spec/containers/1", json!({"name": "web", "image": "busybox"}), "spec.containers[1].name", "Duplicate value: \"web\""),
        ("/spec/initContainers", json!([{"name": "web", "image": "busybox"}]), "spec.containers[0].name", "Duplicate value: \"web\""),
        ("/spec/volumes/1/name", json!("data"), "spec.volumes[1].name", "Duplicate value: \"data\""),
        ("/spec/volumes/1", json!({"name": "x"}), "spec.volumes[1]", "Required value: must specify a volume type"),
        ("/spec/volumes/1", json!({"name": "x", "emptyDir": {}, "hostPath": {"path": "/"}}), "spec.volumes[1]", "Forbidden: may not specify more than 1 volume type"),
        ("/spec/volumes/1", json!({"name": "x", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 60}}]}}), "spec.volumes[1].projected.sources[0].serviceAccountToken.expirationSeconds", "Invalid value: 60: may not specify a duration less than 10 minutes"),
        ("/spec/volumes/1", json!({"name": "x", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 4294967297_i64}}]}}), "spec.volumes[1].projected.sources[0].serviceAccountToken.expirationSeconds", "may not specify a duration larger than 2^32 seconds"),
        ("/spec/volumes/1", json!({"name": "x", "projected": {"sources": [{"serviceAccountToken": {"path": ""}}]}}), "spec.volumes[1].projected.sources[0].serviceAccountToken.path", "Required value"),
        ("/spec/tolerations", json!([{"key": "k", "operator": "Maybe"}]), "spec.tolerations[0].operator", "Unsupported value: \"Maybe\""),
        ("/spec/nodeSelector", json!({"disk": "fast ssd"}), "spec.nodeSelector", "a valid label must be"),
    ];
    refuse_all("Pod", &pod(), cases);
}

#[test]
fn generate_name_stands_in_for_name() {
    let p = with(
        &with(&pod(), "/metadata/name", json!(null)),
        "/metadata/generateName",
        json!("web-"),
    );
    ok("Pod", &p);
    let bad = with(&p, "/metadata/generateName", json!("Web-"));
    expect_invalid(
        "Pod",
        create("Pod", &bad),
        "metadata.generateName",
        "Invalid value: \"Web-\"",
        "generateName",
    );
}

#[test]
fn updates() {
    let base = with(&pod(), "/spec/activeDeadlineSeconds", json!(100));
    // The pull policy defaults from the tag, so a new tag would change it.
    let base = with(&base, "/spec/containers/0/imagePullPolicy", json!("Always"));
    // Images, a shorter deadline and added tolerations may change.
    let mut fine = with(&base, "/spec/containers/0/image", json!("nginx:1.26"));
    fine = with(&fine, "/spec/activeDeadlineSeconds", json!(50));
    fine = with(
        &fine,
        "/spec/tolerations",
        json!([{"key": "k", "operator": "Exists"}]),
    );
    let out = update("Pod", &base, &fine).unwrap_or_else(|s| panic!("{}", s.message));
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.26");
    let cases = [
        (
            with(&base, "/spec/restartPolicy", json!("Never")),
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`",
        ),
        (
            with(&base, "/spec/containers/0/ports/0/containerPort", json!(81)),
            "spec",
            "spec.containers",
        ),
        (
            with(&base, "/spec/activeDeadlineSeconds", json!(200)),
            "spec.activeDeadlineSeconds",
            "must be less than or equal to previous value",
        ),
        (
            with(&base, "/metadata/name", json!("other")),
            "metadata.name",
            "Invalid value: \"other\": field is immutable",
        ),
        (
            with(&base, "/metadata/uid", json!("u2")),
            "metadata.uid",
            "field is immutable",
        ),
    ];
    let base_with_uid = with(&base, "/metadata/uid", json!("u1"));
    for (new, field, want) in cases {
        let old = if field == "metadata.uid" {
            &base_with_uid
        } else {
            &base
        };
        expect_invalid("Pod", update("Pod", old, &new), field, want, want);
    }
}

/// Admits `new` through `pods/ephemeralcontainers` as an update of the
/// stored (admitted) `old`: the stored pod with `new`'s ephemeral containers.
fn ephemeral(old: &Value, new: &Value) -> Result<Value, Status> {
    let stored = ok("Pod", old);
    let mut v = with(
        &stored,
        "/spec/ephemeralContainers",
        new["spec"]["ephemeralContainers"].clone(),
    );
    crate::apiserver::admission::admit_ephemeral(
        super::res("Pod"),
        &mut v,
        &stored,
        ferry_api::object::FieldValidation::Strict,
    )
    .map(|_| v)
}

fn debugger() -> Value {
    json!({"name": "debugger", "image": "busybox", "stdin": true, "tty": true,
           "targetContainerName": "web",
           "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
}

#[test]
fn ephemeral_containers_are_added_only_through_their_subresource() {
    let base = pod();
    let added = with(&base, "/spec/ephemeralContainers", json!([debugger()]));
    let out = ephemeral(&base, &added).unwrap_or_else(|s| panic!("{}", s.message));
    let e = &out["spec"]["ephemeralContainers"][0];
    assert_eq!(e["name"], "debugger");
    assert_eq!(e["targetContainerName"], "web");
    // Defaulted as a container is.
    assert_eq!(e["terminationMessagePolicy"], "File");
    assert_eq!(e["imagePullPolicy"], "Always");
    // kubectl debug's body (`resources: {}`, zero values) is admitted.
    let kubectl = with(
        &base,
        "/spec/ephemeralContainers",
        json!([{"name": "debugger-x", "image": "busybox", "resources": {}, "stdin": true,
                "terminationMessagePolicy": "File", "tty": false, "ports": []}]),
    );
    ephemeral(&base, &kubectl).unwrap_or_else(|s| panic!("{}", s.message));
    // Not on create, not by a pod update.
    expect_invalid(
        "Pod",
        create("Pod", &added),
        "spec.ephemeralContainers",
        "Forbidden: cannot be set on create",
        "create",
    );
    expect_invalid(
        "Pod",
        update(
            "Pod",
            &base,
            &with(
                &ok("Pod", &base),
                "/spec/ephemeralContainers",
                json!([debugger()]),
            ),
        ),
        "spec",
        "Forbidden: pod updates may not change fields other than",
        "pod update",
    );
}

#[test]
fn ephemeral_container_updates_are_refused_as_kubernetes_refuses_them() {
    let base = pod();
    let one = |e: Value| with(&base, "/spec/ephemeralContainers", json!([e]));
    let field = |k: &str, v: Value| one(with(&debugger(), &format!("/{k}"), v));
    let forbidden = "Forbidden: cannot be set for an Ephemeral Container";
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            field("ports", json!([{"containerPort": 80}])),
            "spec.ephemeralContainers[0].ports",
            forbidden,
        ),
        (
            field("readinessProbe", json!({"httpGet": {"port": 80}})),
            "spec.ephemeralContainers[0].readinessProbe",
            forbidden,
        ),
        (
            field("livenessProbe", json!({"exec": {"command": ["true"]}})),
            "spec.ephemeralContainers[0].livenessProbe",
            forbidden,
        ),
        (
            field("resources", json!({"limits": {"cpu": "1"}})),
            "spec.ephemeralContainers[0].resources",
            forbidden,
        ),
        (
            field(
                "lifecycle",
                json!({"preStop": {"exec": {"command": ["true"]}}}),
            ),
            "spec.ephemeralContainers[0].lifecycle",
            forbidden,
        ),
        (
            field("name", json!("web")),
            "spec.ephemeralContainers[0].name",
            "Duplicate value: \"web\"",
        ),
        (
            field("targetContainerName", json!("nope")),
            "spec.ephemeralContainers[0].targetContainerName",
            "Not found: \"nope\"",
        ),
        (
            field(
                "volumeMounts",
                json!([{"name": "data", "mountPath": "/d", "subPath": "x"}]),
            ),
            "spec.ephemeralContainers[0].volumeMounts[0].subPath",
            forbidden,
        ),
        (
            field("volumeMounts", json!([{"name": "gone", "mountPath": "/d"}])),
            "spec.ephemeralContainers[0].volumeMounts[0].name",
            "Not found: \"gone\"",
        ),
        (
            field("image", json!("")),
            "spec.ephemeralContainers[0].image",
            "Required value",
        ),
    ];
    for (new, f, want) in cases {
        expect_invalid("Pod", ephemeral(&base, &new), f, want, f);
    }
    // Two with one name.
    let twice = with(
        &base,
        "/spec/ephemeralContainers",
        json!([debugger(), debugger()]),
    );
    expect_invalid(
        "Pod",
        ephemeral(&base, &twice),
        "spec.ephemeralContainers[1].name",
        "Duplicate value: \"debugger\"",
        "twice",
    );
    // Existing ones may be neither removed nor changed; more may be added.
    let stored = ok("Pod", &base);
    let with_one = ephemeral(&base, &one(debugger())).expect("added");
    let mut stored_one = stored.clone();
    stored_one["spec"]["ephemeralContainers"] = with_one["spec"]["ephemeralContainers"].clone();
    let admit_on = |new: Value| {
        let mut v = with(
            &stored_one,
            "/spec/ephemeralContainers",
            new["spec"]["ephemeralContainers"].clone(),
        );
        crate::apiserver::admission::admit_ephemeral(
            super::res("Pod"),
            &mut v,
            &stored_one,
            ferry_api::object::FieldValidation::Strict,
        )
        .map(|_| v)
    };
    let second = with(
        &with_one,
        "/spec/ephemeralContainers/1",
        json!({"name": "second", "image": "busybox"}),
    );
    let out = admit_on(second).unwrap_or_else(|s| panic!("{}", s.message));
    assert_eq!(out["spec"]["ephemeralContainers"][1]["name"], "second");
    expect_invalid(
        "Pod",
        admit_on(with(&stored_one, "/spec/ephemeralContainers", json!([]))),
        "spec.ephemeralContainers",
        "Forbidden: existing ephemeral containers \"debugger\" may not be removed",
        "removed",
    );
    expect_invalid(
        "Pod",
        admit_on(with(
            &with_one,
            "/spec/ephemeralContainers/0/image",
            json!("alpine"),
        )),
        "spec.ephemeralContainers",
        "Forbidden: existing ephemeral containers \"debugger\" may not be changed",
        "changed",
    );
}
