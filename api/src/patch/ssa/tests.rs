use super::*;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";
const T3: &str = "2025-01-01T00:03:00Z";

fn deployment(replicas: Option<i64>, labels: Value, containers: Value) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
        },
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

fn web(image: &str) -> Value {
    json!([{"name": "web", "image": image}])
}

/// What the API server adds to a created object (system metadata, status).
fn stored(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("1");
    obj["metadata"]["creationTimestamp"] = json!(T0);
    obj
}

/// The managed fields of `obj`, as (manager, operation, subresource, time, fieldsV1).
fn entries(obj: &Value) -> Vec<(String, String, String, Option<String>, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                        e["subresource"].as_str().unwrap_or_default().to_string(),
                        e["time"].as_str().map(str::to_string),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    entries(obj)
        .into_iter()
        .find(|e| e.0 == manager)
        .map(|e| e.4)
        .unwrap_or(Value::Null)
}

fn owns(obj: &Value, manager: &str, pointer: &str) -> bool {
    fields_of(obj, manager).pointer(pointer).is_some()
}

#[test]
fn fields_v1_as_kubernetes_writes_them() {
    let cases = [
        (
            "labels, keyed containers, env by name, ports by containerPort and protocol",
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "uid": "x", "resourceVersion": "3",
                             "generation": 2, "creationTimestamp": T0, "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{
                        "name": "web", "image": "nginx", "args": ["-g", "daemon off;"],
                        "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                        "resources": {"limits": {"cpu": "1"}},
                    }]}},
                },
                "status": {"replicas": 2},
            }),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                        "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                        "f:ports": {
                            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                            "k:{\"containerPort\":53,\"protocol\":\"UDP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}},
                        },
                        "f:resources": {"f:limits": {"f:cpu": {}}},
                    }}}},
                },
            }),
        ),
        (
            "service ports by port and protocol, atomic selector map, empty maps",
            "Service",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "annotations": {}},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            }),
            json!({
                "f:metadata": {"f:annotations": {}},
                "f:spec": {
                    "f:selector": {},
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                },
            }),
        ),
        (
            "sets, atomic owner references, node selector, empty struct",
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "finalizers": ["a/b"],
                             "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u1"}]},
                "spec": {"nodeSelector": {"disk": "ssd"}, "securityContext": {},
                         "containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/d"}]}]},
            }),
            json!({
                "f:metadata": {
                    "f:finalizers": {"v:\"a/b\"": {}},
                    "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}},
                },
                "f:spec": {
                    "f:nodeSelector": {},
                    "f:securityContext": {},
                    "f:containers": {"k:{\"name\":\"c\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:volumeMounts": {"k:{\"mountPath\":\"/d\"}": {".": {}, "f:mountPath": {}, "f:name": {}}},
                    }},
                },
            }),
        ),
        (
            "configmap data keys",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
            json!({"f:data": {"f:k": {}}}),
        ),
    ];
    for (what, kind, obj, want) in cases {
        let got = fields_v1(&obj, kind);
        assert_eq!(got, want, "{what}");
        // FieldsV1 round-trips through the set.
        let set = Set::from_fields(&got).unwrap();
        assert_eq!(set.to_fields(), got, "{what}: round trip");
    }
}

#[test]
fn sets_parse_what_kubernetes_writes() {
    // From `kubectl create deployment`: `.` marks a node owned itself.
    let fields = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}}},
    });
    let set = Set::from_fields(&fields).unwrap();
    let paths: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
    assert_eq!(
        paths,
        [
            ".metadata.labels",
            ".metadata.labels.app",
            ".spec.strategy.rollingUpdate",
            ".spec.strategy.type",
            ".spec.strategy.rollingUpdate.maxSurge",
        ]
    );
    assert_eq!(set.to_fields(), fields);
    for bad in [json!([]), json!({"x:y": {}}), json!({"f:a": 1})] {
        assert_eq!(Set::from_fields(&bad), None, "{bad}");
    }
    let key = Pe::decode("k:{\"protocol\":\"TCP\",\"containerPort\":80}").unwrap();
    assert_eq!(key.to_string(), "[containerPort=80,protocol=\"TCP\"]");
    assert_eq!(
        key.encode(),
        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
    );
    assert_eq!(Pe::decode("v:\"x\"").unwrap().to_string(), "[=\"x\"]");
    assert_eq!(Pe::decode("i:3").unwrap().to_string(), "[3]");
}

#[test]
fn apply_creates() {
    let mut applied = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    applied["status"] = json!({"replicas": 9});
    let got = apply(None, &applied, "Deployment", "kubectl", false, T0).unwrap();
    let mut want = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    want["metadata"]["managedFields"] = json!([{
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                },
            },
        },
    }]);
    assert_eq!(got, want);
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let applied = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(apply(None, &applied, "Deployment", "kubectl", false, T0).unwrap());
    let again = apply(Some(&live), &applied, "Deployment", "kubectl", false, T1).unwrap();
    assert_eq!(again, live, "same object, same managedFields, same time");
    // A change moves the time.
    let changed = deployment(Some(3), json!({"app": "web"}), web("nginx:1"));
    let got = apply(Some(&live), &changed, "Deployment", "kubectl", false, T1).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert_eq!(entries(&got)[0].3.as_deref(), Some(T1));
}

#[test]
fn applying_without_a_field_removes_it_unless_another_manager_owns_it() {
    let first = deployment(
        Some(2),
        json!({"app": "web", "tier": "front"}),
        web("nginx:1"),
    );
    let live = stored(apply(None, &first, "Deployment", "a", false, T0).unwrap());
    // The server defaulted a field no one owns: it stays.
    let mut live = live;
    live["spec"]["revisionHistoryLimit"] = json!(10);

    let second = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let got = apply(Some(&live), &second, "Deployment", "a", false, T1).unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(got["spec"]["revisionHistoryLimit"], 10);
    assert!(!owns(&got, "a", "/f:metadata/f:labels/f:tier"));

    // All labels dropped: the map goes.
    let mut bare = second.clone();
    bare["metadata"].as_object_mut().unwrap().remove("labels");
    let got = apply(Some(&stored(got)), &bare, "Deployment", "a", false, T2).unwrap();
    assert_eq!(got["metadata"].get("labels"), None);

    // A label another manager also set stays when the applier drops it.
    let with_team = record_update(
        Some(&live),
        &{
            let mut n = live.clone();
            n["metadata"]["labels"]["team"] = json!("ops");
            n
        },
        "Deployment",
        "kubectl-label",
        None,
        T1,
    );
    let mut first_team = first.clone();
    first_team["metadata"]["labels"]["team"] = json!("ops");
    let both = apply(Some(&with_team), &first_team, "Deployment", "a", false, T2).unwrap();
    assert!(owns(&both, "a", "/f:metadata/f:labels/f:team"));
    assert!(owns(&both, "kubectl-label", "/f:metadata/f:labels/f:team"));
    let got = apply(Some(&both), &second, "Deployment", "a", false, T3).unwrap();
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "web", "team": "ops"})
    );
}

#[test]
fn equal_values_are_co_owned() {
    let a = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(apply(None, &a, "Deployment", "a", false, T0).unwrap());
    let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let both = apply(Some(&live), &b, "Deployment", "b", false, T1).unwrap();
    assert!(owns(&both, "a", "/f:spec/f:replicas"));
    assert!(owns(&both, "b", "/f:spec/f:replicas"));
    // Nothing changed: b's new entry carries no time, a's is kept.
    let e = entries(&both);
    assert_eq!(
        e.iter()
            .map(|e| (e.0.as_str(), e.3.as_deref()))
            .collect::<Vec<_>>(),
        [("b", None), ("a", Some(T0))]
    );

    // a stops applying replicas: b still owns it, it stays.
    let a2 = deployment(None, json!({"app": "web"}), web("nginx:1"));
    let got = apply(Some(&both), &a2, "Deployment", "a", false, T2).unwrap();
    assert_eq!(got["spec"]["replicas"], 2);
    assert!(!owns(&got, "a", "/f:spec/f:replicas"));
    // b stops too: it goes.
    let b2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let got = apply(Some(&got), &b2, "Deployment", "b", false, T3).unwrap();
    assert_eq!(got["spec"].get("replicas"), None);
    assert_eq!(
        fields_of(&got, "b"),
        Value::Null,
        "an empty entry is dropped"
    );
}

#[test]
fn changing_a_field_another_applier_owns_conflicts_unless_forced() {
    let a = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(apply(None, &a, "Deployment", "a", false, T0).unwrap());
    let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let err = apply(Some(&live), &b, "Deployment", "b", false, T1).unwrap_err();
    assert_eq!(
        err.0,
        [Conflict {
            manager: "a".into(),
            operation: "Apply".into(),
            api_version: "apps/v1".into(),
            subresource: String::new(),
            field: ".spec.replicas".into(),
        }]
    );
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );

    let got = apply(Some(&live), &b, "Deployment", "b", true, T1).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert!(owns(&got, "b", "/f:spec/f:replicas"));
    assert!(!owns(&got, "a", "/f:spec/f:replicas"));
    assert!(owns(&got, "a", "/f:spec/f:selector"));

    // a re-applies its replicas: now it conflicts with b.
    let err = apply(Some(&got), &a, "Deployment", "a", false, T2).unwrap_err();
    assert_eq!(err.0[0].manager, "b");
    assert_eq!(err.0[0].field, ".spec.replicas");
}

#[test]
fn updates_take_fields_from_appliers() {
    let a = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(apply(None, &a, "Deployment", "deployer", false, T0).unwrap());
    // kubectl scale writes the scale subresource.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = record_update(
        Some(&live),
        &scaled,
        "Deployment",
        "kubectl-scale",
        Some("scale"),
        T1,
    );
    let e = entries(&scaled);
    assert_eq!(
        e.iter()
            .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()))
            .collect::<Vec<_>>(),
        [
            ("deployer", "Apply", ""),
            ("kubectl-scale", "Update", "scale")
        ]
    );
    assert_eq!(e[1].4, json!({"f:spec": {"f:replicas": {}}}));
    assert!(!owns(&scaled, "deployer", "/f:spec/f:replicas"));

    let err = apply(Some(&scaled), &a, "Deployment", "deployer", false, T2).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    // The same value again is no conflict: kubectl-scale keeps it, the applier co-owns it.
    let mut same = a.clone();
    same["spec"]["replicas"] = json!(5);
    let got = apply(Some(&scaled), &same, "Deployment", "deployer", false, T2).unwrap();
    assert!(owns(&got, "deployer", "/f:spec/f:replicas"));
    assert!(owns(&got, "kubectl-scale", "/f:spec/f:replicas"));
}

#[test]
fn conflict_with_client_side_apply_and_its_status() {
    // `kubectl apply` (client-side) created it: kubectl-client-side-apply updated every field.
    let created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-client-side-apply",
        None,
        T0,
    ));
    let mut ssa = created.clone();
    ssa["spec"]["replicas"] = json!(3);
    let err = apply(Some(&live), &ssa, "Deployment", "kubectl", false, T1).unwrap_err();
    assert_eq!(
        err.status("Deployment", "web"),
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
            "reason": "Conflict",
            "details": {"causes": [{
                "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                "field": ".spec.replicas",
            }]},
            "code": 409,
        })
    );
    // Two fields, two managers: grouped by manager.
    let mut scaled = live.clone();
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let scaled = record_update(Some(&live), &scaled, "Deployment", "kubectl-edit", None, T1);
    let mut ssa2 = ssa.clone();
    ssa2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
    let err = apply(Some(&scaled), &ssa2, "Deployment", "kubectl", false, T2).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
         - .spec.replicas\n\
         conflicts with \"kubectl-edit\" using apps/v1:\n\
         - .spec.template.spec.containers[name=\"web\"].image"
    );
    assert_eq!(err.to_string(), err.message());
}

#[test]
fn kubectl_upgrades_from_client_side_apply() {
    // Client-side apply recorded replicas 2 in the annotation; the live value is still 2.
    let mut created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    set_last_applied(
        &mut created,
        &deployment(Some(2), json!({"app": "web"}), web("nginx:1")),
    );
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-client-side-apply",
        None,
        T0,
    ));
    let ssa = deployment(Some(3), json!({"app": "web"}), web("nginx:1"));
    let got = apply(Some(&live), &ssa, "Deployment", "kubectl", false, T1).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert!(owns(&got, "kubectl", "/f:spec/f:replicas"));
    assert!(!owns(
        &got,
        "kubectl-client-side-apply",
        "/f:spec/f:replicas"
    ));
    // The annotation now records the server-side applied configuration.
    assert_eq!(last_applied(&got), Some(ssa.clone()));
    // Another manager name gets no such pass.
    assert!(apply(Some(&live), &ssa, "Deployment", "other", false, T1).is_err());
    // Nor does a field whose live value moved away from the annotation.
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(4);
    let edited = record_update(
        Some(&live),
        &edited,
        "Deployment",
        "kubectl-client-side-apply",
        None,
        T1,
    );
    assert!(apply(Some(&edited), &ssa, "Deployment", "kubectl", false, T2).is_err());
}

#[test]
fn keyed_lists_merge_by_key() {
    let applied = deployment(
        None,
        json!({"app": "web"}),
        json!([{
            "name": "web", "image": "nginx:1",
            "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80}],
        }]),
    );
    let live = stored(apply(None, &applied, "Deployment", "a", false, T0).unwrap());
    // The server defaulted the protocol; a controller injected a sidecar and an env var.
    let mut defaulted = live.clone();
    defaulted["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
    let mut injected = defaulted.clone();
    let c = &mut injected["spec"]["template"]["spec"]["containers"];
    c[0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "INJECTED", "value": "y"}));
    c.as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "proxy:1"}));
    let injected = record_update(
        Some(&defaulted),
        &injected,
        "Deployment",
        "injector",
        None,
        T1,
    );
    assert_eq!(
        fields_of(&injected, "injector"),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}},
            "k:{\"name\":\"web\"}": {"f:env": {"k:{\"name\":\"INJECTED\"}": {".": {}, "f:name": {}, "f:value": {}}}},
        }}}}})
    );

    // The applier changes its image, adds an env var and a port: items merge by key.
    let next = deployment(
        None,
        json!({"app": "web"}),
        json!([{
            "name": "web", "image": "nginx:2",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        }]),
    );
    let got = apply(Some(&injected), &next, "Deployment", "a", false, T2).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        json!([
            {
                "name": "web", "image": "nginx:2",
                "env": [{"name": "A", "value": "1"}, {"name": "INJECTED", "value": "y"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
            },
            {"name": "sidecar", "image": "proxy:1"},
        ])
    );
    // Dropping the port it applied removes it; the item key includes the protocol.
    let mut fewer = next.clone();
    fewer["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let got = apply(Some(&got), &fewer, "Deployment", "a", false, T3).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    // Conflicts name the item by its key.
    let mut other = next.clone();
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
    let err = apply(Some(&got), &other, "Deployment", "b", false, T3).unwrap_err();
    assert_eq!(
        err.0.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
        [".spec.template.spec.containers[name=\"web\"].image"]
    );
}

#[test]
fn keyed_list_order() {
    // (live, applied, merged) names; live items the applier lacks stay in place.
    let cases = [
        (vec!["a", "b"], vec!["a", "c"], vec!["a", "b", "c"]),
        (vec!["a", "b", "c"], vec!["c", "a"], vec!["b", "c", "a"]),
        (vec!["x"], vec!["a", "b"], vec!["x", "a", "b"]),
        (vec!["a", "b"], vec!["b", "a"], vec!["b", "a"]),
    ];
    let cx = Cx::new("Pod");
    let ty = Ty::root(&cx);
    let (containers, _) = ty.field("spec").0.field("containers");
    for (live, applied, want) in cases {
        let items =
            |names: &[&str]| -> Vec<Value> { names.iter().map(|n| json!({"name": n})).collect() };
        let got = merge_list(&items(&live), &items(&applied), &containers);
        assert_eq!(got, items(&want), "{live:?} + {applied:?}");
    }
}

#[test]
fn status_in_an_applied_configuration_is_ignored() {
    let mut live = stored(
        apply(
            None,
            &deployment(Some(1), json!({}), web("nginx:1")),
            "Deployment",
            "a",
            false,
            T0,
        )
        .unwrap(),
    );
    live["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let mut applied = deployment(Some(1), json!({}), web("nginx:1"));
    applied["status"] = json!({"replicas": 7});
    let got = apply(Some(&live), &applied, "Deployment", "a", false, T1).unwrap();
    assert_eq!(got["status"], json!({"replicas": 1, "readyReplicas": 1}));
    assert_eq!(fields_of(&got, "a").get("f:status"), None);
    assert_eq!(got, live, "nothing changed");
}

#[test]
fn record_update_on_create_as_kubernetes_records_it() {
    let created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let mut created = created;
    created["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
    created["status"] = json!({"replicas": 0});
    let got = record_update(None, &created, "Deployment", "kubectl-create", None, T0);
    assert_eq!(
        got["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                    },
                },
            },
        }])
    );
    let mut without = got.clone();
    without["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(without, created, "record_update changes only managedFields");
}

#[test]
fn record_update_moves_changed_fields() {
    let created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-create",
        None,
        T0,
    ));

    // An edit of the image: the editor owns it now, the creator no longer.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    edited["status"] = json!({"replicas": 5});
    let got = record_update(Some(&live), &edited, "Deployment", "kubectl-edit", None, T1);
    let image = "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"web\"}/f:image";
    assert!(owns(&got, "kubectl-edit", image));
    assert!(!owns(&got, "kubectl-create", image));
    assert!(owns(&got, "kubectl-create", "/f:spec/f:replicas"));
    assert_eq!(fields_of(&got, "kubectl-edit").get("f:status"), None);

    // Nothing changed: nothing recorded, no time moved.
    let same = record_update(Some(&got), &got, "Deployment", "kubectl-edit", None, T2);
    assert_eq!(same, got);

    // Removing a field removes it from every set.
    let mut removed = got.clone();
    removed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    let after = record_update(Some(&got), &removed, "Deployment", "x", None, T2);
    assert!(!owns(&after, "kubectl-create", "/f:metadata/f:labels"));
    assert_eq!(fields_of(&after, "x"), Value::Null);
}

#[test]
fn record_update_for_status_writes() {
    let created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-create",
        None,
        T0,
    ));
    let mut new = live.clone();
    new["status"] = json!({"replicas": 2});
    new["spec"]["replicas"] = json!(9);
    let got = record_update(
        Some(&live),
        &new,
        "Deployment",
        "kube-controller-manager",
        Some("status"),
        T1,
    );
    let e = entries(&got);
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[1].0.as_str(), e[1].1.as_str(), e[1].2.as_str()),
        ("kube-controller-manager", "Update", "status")
    );
    assert_eq!(e[1].4, json!({"f:status": {"f:replicas": {}}}));
    assert!(owns(&got, "kubectl-create", "/f:spec/f:replicas"));
}

#[test]
fn record_update_managed_fields_sources() {
    let created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    // No managed fields on an existing object: updates do not start tracking.
    let untracked = stored(created.clone());
    let mut new = untracked.clone();
    new["spec"]["replicas"] = json!(3);
    let got = record_update(Some(&untracked), &new, "Deployment", "x", None, T1);
    assert_eq!(got, new);
    // ... the first apply does, giving what was there to before-first-apply.
    let got = apply(Some(&untracked), &created, "Deployment", "a", false, T1).unwrap();
    let e = entries(&got);
    assert_eq!(
        e.iter()
            .map(|e| (e.0.as_str(), e.1.as_str()))
            .collect::<Vec<_>>(),
        [("a", "Apply"), ("before-first-apply", "Update")]
    );
    // The request's managed fields are used; `[]` clears them.
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-create",
        None,
        T0,
    ));
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([]);
    let got = record_update(Some(&live), &cleared, "Deployment", "x", None, T1);
    assert_eq!(got["metadata"].get("managedFields"), None);
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    let got = record_update(Some(&live), &cleared, "Deployment", "x", None, T1);
    assert_eq!(got["metadata"].get("managedFields"), None);
}

#[test]
fn entries_are_sorted_and_capped() {
    let created =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let mut obj = stored(record_update(
        None,
        &created,
        "ConfigMap",
        "creator",
        None,
        T0,
    ));
    obj = apply(
        Some(&obj),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"applied": "1"}}),
        "ConfigMap",
        "zz-applier",
        false,
        "2025-01-01T00:00:30Z",
    )
    .unwrap();
    for i in 0..12 {
        let mut new = obj.clone();
        new["data"][format!("k{i:02}")] = json!("v");
        let t = format!("2025-01-01T01:{i:02}:00Z");
        obj = record_update(Some(&obj), &new, "ConfigMap", &format!("m{i:02}"), None, &t);
    }
    let e = entries(&obj);
    let names: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
    // Apply first, then by time. Past 10 updaters, each write merges the
    // oldest into ancient-changes (the first one becomes it), which takes the
    // time of the last one merged: creator, m00, m01 and m02 are in it.
    assert_eq!(
        names,
        [
            "zz-applier",
            "ancient-changes",
            "m03",
            "m04",
            "m05",
            "m06",
            "m07",
            "m08",
            "m09",
            "m10",
            "m11"
        ]
    );
    assert_eq!(e[1].3.as_deref(), Some("2025-01-01T01:02:00Z"));
    let ancient = &e[1].4["f:data"];
    for k in ["f:k00", "f:k01", "f:k02"] {
        assert!(e[2..].iter().all(|e| e.4["f:data"].get(k).is_none()));
        assert!(ancient.get(k).is_some(), "{k} in {ancient}");
    }
}

#[test]
fn default_manager_from_user_agent() {
    let long = "x".repeat(200);
    let cases = [
        (
            Some("kubectl/v1.33.0 (linux/amd64) kubernetes/abc123"),
            "kubectl",
        ),
        (Some("OpenAPI-Generator/31.0.0/python"), "OpenAPI-Generator"),
        (Some("my\tcontroller/1"), "mycontroller"),
        (Some("plain"), "plain"),
        (Some(""), "unknown"),
        (Some("/v1"), "unknown"),
        (None, "unknown"),
        (Some(long.as_str()), &long[..128]),
    ];
    for (ua, want) in cases {
        assert_eq!(default_manager(ua), want, "{ua:?}");
    }
}

#[test]
fn unknown_manager_and_untyped_kinds() {
    // An empty manager name is recorded as `unknown`, as Kubernetes does.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let got = record_update(None, &cm, "ConfigMap", "", None, T0);
    assert_eq!(entries(&got)[0].0, "unknown");
    // A kind without a schema: fields are struct fields, lists follow the
    // strategic-merge-patch table.
    let obj = json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "w"},
                     "spec": {"containers": [{"name": "a", "image": "i"}], "args": ["x"]}});
    assert_eq!(
        fields_v1(&obj, "Widget"),
        json!({"f:spec": {"f:args": {}, "f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
    );
}

#[test]
fn sets_merge_by_value() {
    let cm = |finalizers: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": finalizers}});
    let live = stored(apply(None, &cm(json!(["a/x"])), "ConfigMap", "a", false, T0).unwrap());
    assert_eq!(
        fields_of(&live, "a"),
        json!({"f:metadata": {"f:finalizers": {"v:\"a/x\"": {}}}})
    );
    // Another manager adds a member; the applier's next apply keeps it and adds its own.
    let mut added = live.clone();
    added["metadata"]["finalizers"] = json!(["a/x", "b/y"]);
    let added = record_update(Some(&live), &added, "ConfigMap", "b", None, T1);
    let got = apply(
        Some(&added),
        &cm(json!(["a/z"])),
        "ConfigMap",
        "a",
        false,
        T2,
    )
    .unwrap();
    assert_eq!(got["metadata"]["finalizers"], json!(["b/y", "a/z"]));
    let co = apply(
        Some(&added),
        &cm(json!(["b/y"])),
        "ConfigMap",
        "c",
        false,
        T2,
    )
    .unwrap();
    assert!(
        owns(&co, "c", "/f:metadata/f:finalizers/v:\"b~1y\""),
        "co-owned"
    );
    assert!(owns(&co, "b", "/f:metadata/f:finalizers/v:\"b~1y\""));
}

#[test]
fn dropping_an_item_drops_it_even_where_another_manager_changed_a_field_of_it() {
    let two = deployment(
        Some(1),
        json!({}),
        json!([{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "log:1"}]),
    );
    let live = stored(apply(None, &two, "Deployment", "a", false, T0).unwrap());
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][1]["image"] = json!("log:2");
    let edited = record_update(Some(&live), &edited, "Deployment", "kubectl-edit", None, T1);
    // a still owns the item (`.`), kubectl-edit its image only.
    let log = "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"log\"}";
    assert!(owns(&edited, "a", &format!("{log}/.")));
    assert!(owns(&edited, "kubectl-edit", &format!("{log}/f:image")));
    let one = deployment(Some(1), json!({}), web("nginx:1"));
    let got = apply(Some(&edited), &one, "Deployment", "a", false, T2).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        web("nginx:1")
    );
    assert_eq!(fields_of(&got, "kubectl-edit"), Value::Null);
}

/// The annotation a server-side apply by `kubectl` rewrites is what
/// Kubernetes' `lastAppliedUpdater` writes: the applied configuration as Go's
/// JSON encoder prints it (sorted keys, `<`, `>`, `&` escaped, a final
/// newline), and it is dropped rather than stored when the annotations would
/// pass their 256 KiB limit (the apply still succeeds).
#[test]
fn kubectl_rewrites_the_annotation_as_kubernetes_does() {
    let mut created = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    set_last_applied(
        &mut created,
        &deployment(Some(2), json!({"app": "web"}), web("nginx:1")),
    );
    let live = stored(record_update(
        None,
        &created,
        "Deployment",
        "kubectl-client-side-apply",
        None,
        T0,
    ));
    let mut ssa = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    ssa["metadata"]["annotations"] = json!({"note": "a<b & c>d"});
    let got = apply(Some(&live), &ssa, "Deployment", "kubectl", false, T1).unwrap();
    let text = got["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(text.ends_with("}\n"), "{text:?}");
    assert!(
        text.contains(r#""annotations":{"note":"a\u003cb \u0026 c\u003ed"}"#),
        "{text}"
    );
    assert!(text.starts_with(r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":"#));
    assert_eq!(last_applied(&got), Some(ssa.clone()));

    // 200 KB in an annotation of the configuration: with its copy in the
    // last-applied one the annotations pass 256 KiB, so that one is dropped.
    let mut big = ssa.clone();
    big["metadata"]["annotations"] = json!({"note": "x".repeat(200_000)});
    let got = apply(Some(&live), &big, "Deployment", "kubectl", false, T1).unwrap();
    let annotations = got["metadata"]["annotations"].as_object().unwrap();
    assert!(!annotations.contains_key(LAST_APPLIED_ANNOTATION));
    assert_eq!(annotations["note"].as_str().unwrap().len(), 200_000);
}

/// `record_update` of a create computed without the remembered shapes.
fn uncached_create(new: &Value, kind: &str) -> Value {
    let cx = Cx::new(kind);
    let ty = Ty::root(&cx);
    let api_version = api_version_of(Some(new)).unwrap_or_default();
    let writer = Writer {
        name: "m",
        api_version: &api_version,
        subresource: "",
        reset: "status",
        now: T0,
    };
    let mut managers = Vec::new();
    let out = without_managed_fields(new);
    writer.record(
        &zero_object(kind),
        &strip_nulls(out.clone()),
        &ty,
        &mut managers,
    );
    let mut out = out;
    set_managed_fields(&mut out, encode(managers));
    out
}

#[test]
fn record_update_on_create_remembers_shapes_only_where_values_do_not_count() {
    let cm = |name: &str, data: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name},
                "creationTimestamp": T0, "uid": name, "annotations": null},
            "data": data})
    };
    let cron = |schedule: &str| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    };
    let pod = |image: &str, port: i64| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": image, "labels": {}},
            "spec": {"containers": [{"name": "c", "image": image,
                "ports": [{"containerPort": port, "protocol": "TCP"}]}], "nodeName": image},
            "status": {"phase": "Pending"}})
    };
    let mut dep = deployment(Some(2), json!({"app": "web"}), web("nginx:1"));
    dep["spec"]["strategy"] = json!({});
    let objects = [
        (cm("a", json!({"key": "x"})), "ConfigMap"),
        // Same shape: other name, labels' and data's values.
        (cm("b", json!({"key": "yy"})), "ConfigMap"),
        (cm("b", json!({"other": "x"})), "ConfigMap"),
        (cm("b", json!({})), "ConfigMap"),
        (cm("b", json!(null)), "ConfigMap"),
        (cron(""), "CronJob"),
        (cron("*/5 * * * *"), "CronJob"),
        (cron("*/6 * * * *"), "CronJob"),
        (pod("nginx", 80), "Pod"),
        (pod("redis", 6379), "Pod"),
        (dep.clone(), "Deployment"),
        (
            deployment(None, json!({"app": "web", "tier": "x"}), web("nginx:2")),
            "Deployment",
        ),
    ];
    for _ in 0..2 {
        for (obj, kind) in &objects {
            let got = record_update(None, obj, kind, "m", None, T0);
            assert_eq!(got, uncached_create(obj, kind), "{kind} {obj}");
        }
    }
    // The same shape, whatever the values the comparison does not read...
    let shape_of = |v: &Value, kind: &str| {
        let mut out = Vec::new();
        shape_key(&strip_nulls(v.clone()), Some(&zero_object(kind)), &mut out);
        out
    };
    assert_eq!(
        shape_of(&objects[0].0, "ConfigMap"),
        shape_of(&objects[1].0, "ConfigMap")
    );
    // ...and another where the zero object has a value to compare with.
    assert_ne!(
        shape_of(&cron(""), "CronJob"),
        shape_of(&cron("x"), "CronJob")
    );
    assert_ne!(
        shape_of(&objects[8].0, "Pod"),
        shape_of(&objects[9].0, "Pod")
    );
}
